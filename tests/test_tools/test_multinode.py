"""tools/dist_train.sh across two "nodes" on this machine: two torchrun invocations with
NNODES=2, NODE_RANK=0/1 and MASTER_ADDR=127.0.0.1, one process each, gloo."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.test_tools.launch_utils import clean_env, free_port, tiny_run_config

STEPS = 3  # 30 images, 2 ranks x 4 per step, drop_last; 24 writes wrap the 16-slot bank


def assert_same_run(r0: dict, r1: dict) -> None:
    """Two ranks of one run: identical banks, pointers, losses and (DDP) weights."""
    assert (r0['rank'], r0['world'], r1['rank'], r1['world']) == (0, 2, 1, 2)
    assert len(r0['losses']) == STEPS
    assert r0['losses'] == r1['losses']
    assert torch.equal(r0['bank'], r1['bank'])
    assert torch.equal(r0['sample_idx'], r1['sample_idx'])
    assert r0['ptr'] == r1['ptr'] == (STEPS * 8) % 16
    assert bool((r0['sample_idx'] >= 0).all())  # the bank wrapped: every slot holds an image
    params = [k for k in r0['state'] if 'running_' not in k and 'num_batches' not in k]
    assert params
    for k in params:  # BN running statistics stay per rank (broadcast_buffers=False)
        assert torch.equal(r0['state'][k], r1['state'][k]), k


@pytest.mark.slow
def test_two_torchrun_nodes_train_one_model(tmp_path):
    out = tmp_path / 'records'
    out.mkdir()
    cfg = tiny_run_config(tmp_path, str(out), per_class=3)
    port = free_port()
    procs = []
    for node in (0, 1):
        env = clean_env(NNODES=2, NODE_RANK=node, MASTER_ADDR='127.0.0.1', PORT=port,
                        PYTHON=sys.executable)
        log = open(tmp_path / f'node{node}.log', 'w')
        procs.append(subprocess.Popen(
            ['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg, '1',
             '--work-dir', str(tmp_path / 'work'), '--no-validate'], env=env, stdout=log,
            stderr=subprocess.STDOUT, cwd=str(tmp_path)))
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = [(tmp_path / f'node{n}.log').read_text() for n in (0, 1)]
    assert codes == [0, 0], '\n'.join(log[-3000:] for log in logs)
    r0, r1 = (torch.load(out / f'rank{r}.pt', weights_only=False) for r in (0, 1))
    assert_same_run(r0, r1)
