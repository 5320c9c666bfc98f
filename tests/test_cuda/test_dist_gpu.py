"""SyncBN in the target encoder inside a one-process nccl group (``model.target_bn='sync'``).

With one process SyncBN must equal plain training-mode BN; the test checks that the conversion
happened, that a full training step runs under nccl with the bank's all-gather path, and that the
target embedding equals the one of an unconverted copy with the same weights.
"""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.dist import all_gather, get_world_size
from mmengine.optim import OptimWrapper

from mmmsf.utils.dist_utils import all_gather_rows
from mmmsf.registry import MODELS
from tests.conftest import tiny_msf_cfg
from tests.test_cuda.test_train_step_gpu import SIZE, batch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def nccl_group():
    if not dist.is_nccl_available():
        pytest.skip('this torch build has no nccl backend')
    if dist.is_initialized():
        pytest.skip('a process group already exists in this process')
    torch.cuda.set_device(0)
    dist.init_process_group('nccl', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0,
                            world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.cuda
def test_syncbn_target_in_one_process_nccl_group(nccl_group):
    assert dist.get_backend() == 'nccl' and get_world_size() == 1
    x = torch.arange(6.0, device='cuda')
    assert torch.equal(all_gather(x)[0], x) and torch.equal(all_gather_rows(x), x)

    torch.manual_seed(0)
    model = MODELS.build(tiny_msf_cfg(size=256, dim=32, width=16, target_bn='sync'))
    model.init_weights()
    plain = MODELS.build(tiny_msf_cfg(size=256, dim=32, width=16, target_bn='none'))
    plain.load_state_dict(model.state_dict())  # SyncBN and BN have the same state keys
    model, plain = model.cuda().train(), plain.cuda().train()
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.target_backbone.modules())
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.backbone.modules())
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.target_backbone.modules())

    data = model.data_preprocessor(batch(0, 'cuda'), True)
    u_sync = model.target_embed(data['inputs'][0])
    u_plain = plain.target_embed(data['inputs'][0])
    assert torch.allclose(u_sync, u_plain, atol=1e-5)

    bn = next(m for m in model.target_backbone.modules() if isinstance(m, nn.SyncBatchNorm))
    before = bn.running_mean.clone()
    opt = OptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.05))
    log = model.train_step(batch(1, 'cuda'), opt)
    assert torch.isfinite(torch.tensor(float(log['loss'])))
    assert not torch.equal(bn.running_mean, before)  # the target's SyncBN saw the batch
    assert model.memory_bank.total_written == SIZE['cuda']['batch']

