"""Linear evaluation (top-1 / top-5) of a pre-trained checkpoint with mmengine's Runner.

    python tools/linear_eval.py CONFIG CHECKPOINT [--work-dir DIR] [--precompute-features]
    python tools/linear_eval.py CONFIG --random-init            # the random-init baseline
    bash tools/dist_linear_eval.sh CONFIG CHECKPOINT NUM_PROCS [options]

CONFIG is one of configs/benchmarks/linear/*.py (ImageNet, its 1% / 10% subsets, the
cifar10_mini demo). The result is printed and written to <work-dir>/eval/linear.json
(default work-dir: <checkpoint folder>/linear/<config>_<checkpoint>).
"""
import argparse
import json

from mmmsf.apis.config import DictAction
from mmengine.dist import is_main_process

from mmmsf.apis import load_config
from mmmsf.apis.linear_eval import linear_eval, prepare_linear_cfg, set_eval_data_root


def parse_args():
    p = argparse.ArgumentParser(description='Linear evaluation of a frozen backbone.')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?')
    p.add_argument('--random-init', action='store_true', help='evaluate the untrained backbone')
    p.add_argument('--work-dir')
    p.add_argument('--prefix', help="backbone key prefix in CHECKPOINT ('backbone.', "
                   "'target_backbone.', '' for a torchvision state dict)")
    p.add_argument('--precompute-features', action='store_true',
                   help='extract frozen features once (no train augmentation): a fast probe')
    p.add_argument('--feature-dir', help='where the pre-computed features are cached')
    p.add_argument('--resume', nargs='?', const='auto', default=None)
    p.add_argument('--data-root', help='override the data_root of every dataset')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = p.parse_args()
    if not args.checkpoint and not args.random_init:
        p.error('give a CHECKPOINT or --random-init')
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    if args.data_root:
        set_eval_data_root(cfg, args.data_root)
    cfg = prepare_linear_cfg(cfg, None if args.random_init else args.checkpoint, args.work_dir,
                             args.launcher, args.prefix, args.resume)
    metrics = linear_eval(cfg, precompute=args.precompute_features or None,
                          feature_dir=args.feature_dir)
    if is_main_process():
        print(json.dumps(dict(metrics, work_dir=cfg.work_dir)))


if __name__ == '__main__':
    from mmmsf.apis.cli import run_tool
    run_tool(main)
