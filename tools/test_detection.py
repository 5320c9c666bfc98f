"""AP50, AP (IoU .50:.95) and AP75 of a fine-tuned detector on VOC test07 (paper Table 5).

    python tools/test_detection.py CONFIG CHECKPOINT [--data-root DIR] [--out results.json]
    python tools/test_detection.py CONFIG --random-init          # the untrained detector
The metrics are mmdet's VOCMetric over IoU 0.50:0.05:0.95 (VOC07 11-point AP): AP50 and AP75
are its per-threshold values, AP their mean.
"""
import json

from mmengine.dist import get_rank

from mmmsf.apis.cli import default_argument_parser
from mmmsf.utils import require_detection_stack


def parse_args():
    p = default_argument_parser('Test a detector on VOC test07 (CHECKPOINT: a detector '
                                'checkpoint of tools/train_detection.py).', checkpoint=True,
                                work_dir=True, launcher=True,
                                data_root='VOCdevkit folder (holding VOC2007/)')
    p.add_argument('--out', help='also write the numbers to this JSON file')
    return p.parse_args()


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
