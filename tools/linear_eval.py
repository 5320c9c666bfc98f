"""Linear evaluation (top-1 / top-5) of a pre-trained checkpoint with mmengine's Runner.

    python tools/linear_eval.py CONFIG CHECKPOINT [--work-dir DIR] [--precompute-features]
    python tools/linear_eval.py CONFIG --random-init            # the random-init baseline
    bash tools/dist_linear_eval.sh CONFIG CHECKPOINT NUM_PROCS [options]

CONFIG is one of configs/benchmarks/linear/*.py (ImageNet, its 1% / 10% subsets, the
cifar10_mini demo). The result is printed and written to <work-dir>/eval/linear.json
(default work-dir: <checkpoint folder>/linear/<config>_<checkpoint>).
"""
import json

from mmengine.dist import is_main_process

from mmmsf.apis import load_config
from mmmsf.apis.cli import default_argument_parser, run_tool
from mmmsf.apis.linear_eval import linear_eval, prepare_linear_cfg, set_eval_data_root


def parse_args():
    p = default_argument_parser('Linear evaluation of a frozen backbone.', checkpoint=True,
                                work_dir=True, launcher=True)
    p.add_argument('--prefix', help="backbone key prefix in CHECKPOINT ('backbone.', "
                   "'target_backbone.', '' for a torchvision state dict)")
    p.add_argument('--precompute-features', action='store_true',
                   help='extract frozen features once (no train augmentation): a fast probe')
    p.add_argument('--feature-dir', help='where the pre-computed features are cached')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='resume from CKPT, or from the latest checkpoint of work-dir if no CKPT')
    return p.parse_args()


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
    run_tool(main)
