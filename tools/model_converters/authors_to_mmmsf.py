"""Convert the authors' released MSF/CMSF checkpoint into an mmmsf checkpoint.

    python tools/model_converters/authors_to_mmmsf.py SRC.pth DST.pth
        # weights, EMA target and memory bank: for kNN, linear evaluation and load_from
    python tools/model_converters/authors_to_mmmsf.py SRC.pth DST.pth \
        --config configs/msf/msf_r50_128k_200e.py --iters-per-epoch 5004
        # also optimiser momentum and LR schedule: DST.pth works with tools/train.py --resume

Keys without an mmmsf counterpart stop the conversion; map them (--map SRC=DST) or leave them
out on purpose (--drop KEY), e.g. CMSF-2Q's per-image ``pool`` and ``pool_qindex``.
"""
import argparse
import json

from mmmsf.apis.config import DictAction

from mmmsf.apis.convert import convert_authors_checkpoint


def main():
    p = argparse.ArgumentParser(description="authors' MSF/CMSF checkpoint -> mmmsf checkpoint")
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--config', help='mmmsf pre-training config of the same model (resumable '
                   'output)')
    p.add_argument('--iters-per-epoch', type=int,
                   help='training images // global batch (with --config)')
    p.add_argument('--map', nargs='+', default=[], metavar='SRC=DST',
                   help='extra key mapping, authors key = mmmsf key')
    p.add_argument('--drop', nargs='+', default=[], metavar='KEY',
                   help="authors' keys to leave out on purpose")
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override keys of --config')
    args = p.parse_args()
    extra = {}
    for item in args.map:
        if '=' not in item:
            p.error(f'--map {item!r}: write SRC=DST')
        k, v = item.split('=', 1)
        extra[k] = v
    summary = convert_authors_checkpoint(args.src, args.dst, args.config, args.iters_per_epoch,
                                         extra, args.drop, args.cfg_options)
    print(json.dumps(dict(summary, dst=args.dst)))


if __name__ == '__main__':
    main()
