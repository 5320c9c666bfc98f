"""AP50, AP (IoU .50:.95) and AP75 of a fine-tuned detector on VOC test07 (paper Table 5).

    python tools/test_detection.py CONFIG CHECKPOINT [--data-root DIR] [--out results.json]
    python tools/test_detection.py CONFIG --random-init          # the untrained detector
The metrics are mmdet's VOCMetric over IoU 0.50:0.05:0.95 (VOC07 11-point AP): AP50 and AP75
are its per-threshold values, AP their mean.
"""
import argparse
import json

from mmmsf.apis.config import DictAction
from mmengine.dist import get_rank

from mmmsf.utils import require_detection_stack


def parse_args():
    p = argparse.ArgumentParser(description='Test a detector on VOC test07.')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='detector checkpoint (tools/train_detection.py)')
    p.add_argument('--random-init', action='store_true', help='test the untrained detector')
    p.add_argument('--work-dir', help='where the test log goes')
    p.add_argument('--data-root', help='VOCdevkit folder (holding VOC2007/)')
    p.add_argument('--out', help='also write the numbers to this JSON file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = p.parse_args()
    if bool(args.checkpoint) == args.random_init:
        p.error('give a CHECKPOINT or --random-init (not both).')
    return args


def main():
    args = parse_args()
    require_detection_stack()  # one line naming the install command, before mmdet is imported
    from mmmsf.detection import load_detection_config, test_detector
    cfg = load_detection_config(args.config, args.cfg_options, args.data_root)
    ap = test_detector(cfg, args.checkpoint, args.work_dir, args.launcher)
    if get_rank() == 0:
        print('AP50 {AP50:.1f}  AP {AP:.1f}  AP75 {AP75:.1f}'.format(**ap))
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(dict(checkpoint=args.checkpoint, **ap), f, indent=2)


if __name__ == '__main__':
    main()
