"""Shared by the launcher tests: a tiny training config on the bundled images, a free port."""
import os
import os.path as osp
import socket

from tests.conftest import MINI, ROOT

DEMO = osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tiny_run_config(tmp_path, out_dir: str, per_class: int = 2, batch: int = 4,
                    bank: int = 16, epochs: int = 1) -> str:
    """A config file: tiny ResNet, ``per_class`` images of each class, one epoch, a bank of
    ``bank`` slots (small enough to wrap around), and the per-rank record hook."""
    lines = []
    for c in sorted(os.listdir(osp.join(MINI, 'train'))):
        lines += [f'{c}/{i:04d}.jpg' for i in range(per_class)]
    subset = tmp_path / 'subset.txt'
    subset.write_text('\n'.join(lines) + '\n')
    cfg = tmp_path / 'tiny_launch.py'
    cfg.write_text(f"""
_base_ = {DEMO!r}
data_root = {MINI!r}
model = dict(backbone=dict(base_channels=8),
             neck=dict(in_channels=64, hid_channels=64, out_channels=32),
             predictor=dict(in_channels=32, hid_channels=64, out_channels=32),
             memory_bank=dict(size={bank}, dim=32), topk=3)
train_dataloader = dict(batch_size={batch}, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root={MINI!r}, ann_file={str(subset)!r}))
train_cfg = dict(max_epochs={epochs})
param_scheduler = [dict(type='CosineAnnealingLR', T_max={epochs}, by_epoch=True, begin=0,
                        end={epochs})]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
custom_imports = dict(imports=['tests.test_tools.rank_record_hook'], allow_failed_imports=False)
custom_hooks = [
    dict(type='MomentumUpdateHook', momentum=0.99),
    dict(type='NNMemoryBankHook', interval=1),
    dict(type='RandomStateHook'),
    dict(type='RankRecordHook', out_dir={out_dir!r}),
]
""")
    return str(cfg)


def clean_env(**extra) -> dict:
    """The environment of a launched run: this checkout first on PYTHONPATH, one thread."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('SLURM_', 'MASTER_', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK'))}
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    env.update({k: str(v) for k, v in extra.items()})
    return env
