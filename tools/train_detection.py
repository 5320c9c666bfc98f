"""Fine-tune Faster R-CNN on PASCAL VOC from an mmmsf checkpoint (paper Table 5) with mmdet.

    python tools/train_detection.py CONFIG --pretrained CKPT [--work-dir DIR] [--seed S]
    python tools/train_detection.py CONFIG --pretrained CKPT --repeat 5    # mean ± std, 5 seeds
    python tools/train_detection.py CONFIG --scratch                       # random-init baseline
    bash tools/dist_train_detection.sh CONFIG 8 --pretrained CKPT [...]
CKPT is a checkpoint of tools/train.py or a backbone written by tools/extract_backbone.py.
"""
import os.path as osp

from mmengine.dist import get_rank

from mmmsf.apis.cli import default_argument_parser, run_tool
from mmmsf.utils import require_detection_stack


def parse_args():
    p = default_argument_parser('Fine-tune a detector from a pre-trained backbone.',
                                work_dir=True, launcher=True,
                                data_root='VOCdevkit folder (holding VOC2007/ and VOC2012/)')
    init = p.add_mutually_exclusive_group()
    init.add_argument('--pretrained', help='mmmsf checkpoint or extracted backbone')
    init.add_argument('--scratch', action='store_true', help='random initialisation (baseline)')
    p.add_argument('--seed', type=int, default=None, help='seed (first seed with --repeat)')
    p.add_argument('--repeat', type=int, default=None,
                   help='fine-tune N times with seeds seed..seed+N-1, test each, print mean ± std')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='resume from CKPT, or from the latest checkpoint of work-dir')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision')
    return p.parse_args()


def main():
    args = parse_args()
    require_detection_stack()  # one line naming the install command, before mmdet is imported
    from mmmsf.detection import (format_runs, last_checkpoint, load_detection_config,
                                 repeat_finetuning, train_detector)

    def load():
        return load_detection_config(args.config, args.cfg_options, args.data_root)

    if args.repeat is not None:
        if args.resume:
            raise SystemExit('--resume and --repeat cannot be combined.')
        cfg = load()
        work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
            'work_dirs', osp.splitext(osp.basename(args.config))[0])
        result = repeat_finetuning(load, args.repeat, work_dir, args.pretrained, args.scratch,
                                   base_seed=args.seed or 0, launcher=args.launcher)
        if get_rank() == 0:
            print(format_runs(result['runs']))
            print(f'results: {osp.join(work_dir, "repeat_results.json")}')
        return
    runner = train_detector(load(), args.work_dir, args.pretrained, args.scratch, args.seed,
                            args.launcher, args.resume, args.amp)
    if get_rank() == 0:
        print(f'checkpoint: {last_checkpoint(runner.work_dir)}')


if __name__ == '__main__':
    run_tool(main)
