"""The README's demo: pre-train MSF on the bundled images, then kNN vs. random init."""
import os.path as osp
import time
from typing import Dict, Optional

from mmengine.config import Config

from mmmsf.visualization.training_curves import plot_training_curves

from .config import load_config
from .evaluate import knn_from_config
from .train import prepare_train_cfg, train

DEMO_CONFIG = 'configs/demo/msf_r18_cifar10mini_ws.py'


def run_demo(config: str = DEMO_CONFIG, work_dir: str = 'work_dirs/demo_msf',
             data_root: Optional[str] = None, cfg_options: Optional[dict] = None) -> Dict:
    """Train ``config`` and return kNN accuracies of random-init and trained backbones."""
    cfg: Config = load_config(config, cfg_options, data_root)
    cfg = prepare_train_cfg(cfg, work_dir=work_dir)
    t0 = time.time()
    baseline = knn_from_config(cfg, None)
    t1 = time.time()
    runner = train(cfg)
    t2 = time.time()
    ckpt = osp.join(cfg.work_dir, f'epoch_{runner.max_epochs}.pth')
    trained = knn_from_config(cfg, ckpt)
    t3 = time.time()
    curves = osp.join(cfg.work_dir, 'curves.png')
    plot_training_curves([cfg.work_dir], curves, [osp.basename(osp.normpath(cfg.work_dir))])
    return dict(random=baseline, trained=trained, checkpoint=ckpt, curves=curves,
                seconds=dict(knn=(t1 - t0) + (t3 - t2), train=t2 - t1, total=t3 - t0))


def format_demo(result: Dict) -> str:
    ks = list(result['random'])
    head = '| backbone | ' + ' | '.join(ks) + ' |'
    sep = '|---|' + '---|' * len(ks)
    rows = [f"| {name} | " + ' | '.join(f'{result[name][k]:.1f}' for k in ks) + ' |'
            for name in ('random', 'trained')]
    s = result['seconds']
    return '\n'.join([head, sep] + rows) + (
        f"\n\ntrain {s['train']:.0f} s, kNN {s['knn']:.0f} s, total {s['total']:.0f} s; "
        f"checkpoint {result['checkpoint']}")
