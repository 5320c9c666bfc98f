"""Real mmengine Runner runs on the bundled images: loss goes down, mid-epoch resume is exact."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook

from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.registry import HOOKS
from tests.conftest import MINI, ROOT, subset_list, tiny_run_options

DEMO = osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py')


@HOOKS.register_module(force=True)
class RecordLossHook(Hook):
    """Test hook: keeps (iter, loss) of every step; optionally 'kills' the run at an iter."""
    records = []

    def __init__(self, kill_at: int = -1):
        self.kill_at = kill_at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        RecordLossHook.records.append((runner.iter, float(outputs['loss'])))
        if runner.iter == self.kill_at:
            raise KeyboardInterrupt('simulated kill')


def tiny_cfg(tmp_path, work_dir, epochs=2, per_class=8, batch=16, extra_hooks=(), **opts):
    options = tiny_run_options(subset_list(tmp_path, per_class), epochs, batch)
    options.update(opts)
    cfg = load_config(DEMO, options, data_root=MINI)
    cfg.custom_hooks = list(cfg.custom_hooks) + list(extra_hooks)
    return prepare_train_cfg(cfg, work_dir=str(work_dir))


@pytest.mark.slow
def test_short_training_lowers_loss(tmp_path):
    RecordLossHook.records = []
    cfg = tiny_cfg(tmp_path, tmp_path / 'run', epochs=6, per_class=16, batch=32,
                   extra_hooks=[dict(type='RecordLossHook')],
                   **{'optim_wrapper.optimizer.lr': 0.1})
    train(cfg)
    losses = [l for _, l in RecordLossHook.records]
    assert len(losses) == 6 * 5
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.05, (first, last)


@pytest.mark.slow
def test_resume_mid_epoch_reproduces_uninterrupted_run(tmp_path):
    common = {'default_hooks.checkpoint': dict(type='CheckpointHook', interval=3, by_epoch=False,
                                               max_keep_ckpts=10),
              'model.target_bn': 'none'}
    RecordLossHook.records = []
    train(tiny_cfg(tmp_path, tmp_path / 'full', extra_hooks=[dict(type='RecordLossHook')],
                   **common))
    full = dict(RecordLossHook.records)
    assert len(full) == 10  # 2 epochs x 5 iters (80 images, batch 16)

    RecordLossHook.records = []
    with pytest.raises(KeyboardInterrupt):  # killed in epoch 2, after the iter-6 checkpoint
        train(tiny_cfg(tmp_path, tmp_path / 'cut',
                       extra_hooks=[dict(type='RecordLossHook', kill_at=8)], **common))
    assert osp.isfile(tmp_path / 'cut' / 'iter_6.pth')
    RecordLossHook.records = []
    cfg = tiny_cfg(tmp_path, tmp_path / 'cut', extra_hooks=[dict(type='RecordLossHook')],
                   **common)
    cfg = prepare_train_cfg(cfg, resume=str(tmp_path / 'cut' / 'iter_6.pth'))
    runner = train(cfg)
    resumed = dict(RecordLossHook.records)
    assert sorted(resumed) == [6, 7, 8, 9]  # 0-based: mid-epoch, the rest of epoch 2 only
    for it, loss in resumed.items():
        assert abs(loss - full[it]) < 1e-5, (it, loss, full[it])
    # the bank, pointer and EMA weights equal those of the uninterrupted run
    from mmmsf.utils.model_io import load_state_dict
    a = load_state_dict(str(tmp_path / 'full' / 'iter_10.pth'))
    b = load_state_dict(str(tmp_path / 'cut' / 'iter_10.pth'))
    for key in ('memory_bank.bank', 'memory_bank.ptr', 'memory_bank.sample_idx',
                'target_backbone.conv1.weight', 'backbone.layer4.1.conv2.weight'):
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key
    assert runner.iter == 10


def test_checkpoints_load_with_safe_loading(tmp_path):
    cfg = tiny_cfg(tmp_path, tmp_path / 'ck', epochs=1)
    train(cfg)
    # mmengine's full checkpoint (message hub, numpy metadata) under weights_only=True
    ckpt = torch.load(str(tmp_path / 'ck' / 'epoch_1.pth'), map_location='cpu',
                      weights_only=True)
    assert 'message_hub' in ckpt and 'memory_bank.bank' in ckpt['state_dict']
    from mmmsf.utils.model_io import extract_backbone
    n = extract_backbone(str(tmp_path / 'ck' / 'epoch_1.pth'), str(tmp_path / 'bb.pth'))
    sd = torch.load(str(tmp_path / 'bb.pth'), weights_only=True)['state_dict']
    assert n == len(sd) and 'conv1.weight' in sd and 'layer4.1.bn2.running_mean' in sd


def _run(cmd, tmp_path, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize('nproc', [1, 2])
def test_dist_train_sh_runs_with_gloo(tmp_path, nproc):
    lst = subset_list(tmp_path, 4)  # 40 images -> batch 8 x nproc
    work = tmp_path / f'dist{nproc}'
    cmd = ['bash', 'tools/dist_train.sh', DEMO, str(nproc), '--work-dir', str(work),
           '--data-root', MINI, '--cfg-options', f'train_dataloader.dataset.ann_file={lst}',
           f'knn_train_dataloader.dataset.ann_file={lst}', f'val_dataloader.dataset.ann_file={lst}',
           'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
           'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
           'model.backbone.base_channels=8', 'model.neck.in_channels=64',
           'model.memory_bank.size=64', 'default_hooks.logger.interval=1']
    env = dict(os.environ, PORT=str(29500 + nproc + os.getpid() % 1000), PYTHON=sys.executable)
    res = subprocess.run(cmd, cwd=ROOT, env=dict(env, OMP_NUM_THREADS='1'),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = torch.load(str(work / 'epoch_1.pth'), map_location='cpu', weights_only=True)
    sidx = ckpt['state_dict']['memory_bank.sample_idx']
    written = int(ckpt['state_dict']['memory_bank.num_written'])
    assert written == 40 // (4 * nproc) * 4 * nproc  # every rank's targets went in
    assert sorted(sidx[:written].tolist()) == sorted(set(sidx[:written].tolist()))


@pytest.mark.slow
def test_amp_training_runs_on_cpu(tmp_path):
    """--amp: bfloat16 autocast on the CPU (float16 + loss scaling on GPUs)."""
    RecordLossHook.records = []
    cfg = tiny_cfg(tmp_path, tmp_path / 'amp', epochs=1, extra_hooks=[dict(type='RecordLossHook')])
    cfg = prepare_train_cfg(cfg, amp=True)
    assert cfg.optim_wrapper.type == 'CPUAutocastOptimWrapper'
    train(cfg)
    losses = [l for _, l in RecordLossHook.records]
    assert len(losses) == 5 and all(0 < l < 4 for l in losses)


def test_train_ends_its_persistent_loader_workers(tmp_path):
    """After train() the persistent loader workers are gone: freeing the Runner later (a
    reference cycle, freed by the garbage collector) would otherwise wait 5 s per worker."""
    import multiprocessing
    cfg = tiny_cfg(tmp_path, tmp_path / 'w', epochs=1, per_class=2, batch=8,
                   **{'train_dataloader.num_workers': 2,
                      'train_dataloader.persistent_workers': True, 'train_cfg.val_interval': 2})
    before = set(multiprocessing.active_children())
    runner = train(cfg)
    assert runner.iter == 2                                   # 20 images, batch 8, drop_last
    assert set(multiprocessing.active_children()) - before == set()
    batches = list(runner.train_loop.dataloader)              # the loader still works
    assert len(batches) == 2
