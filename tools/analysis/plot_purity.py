"""Purity vs. epoch of one or more training runs (MSF paper Fig. 4), as a PNG.

    python tools/analysis/plot_purity.py WORK_DIR [WORK_DIR ...] [--labels k=5 k=10] \
        [--key purity] --out purity.png
Reads the scalars mmengine logged (<work_dir>/<timestamp>/vis_data/scalars.json).
"""
import argparse
import os.path as osp
import sys

# this checkout's mmmsf first, installed or not: `python tools/analysis/<tool>.py` puts only
# tools/analysis on the path
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmsf.visualization import plot_purity  # noqa: E402


def main():
    p = argparse.ArgumentParser(description='purity vs. epoch (paper Fig. 4)')
    p.add_argument('work_dirs', nargs='+')
    p.add_argument('--labels', nargs='+', help='one legend label per work_dir')
    p.add_argument('--key', default='purity', help="logged scalar (e.g. 'purity')")
    p.add_argument('--out', default='purity.png')
    args = p.parse_args()
    curves = plot_purity(args.work_dirs, args.out, args.labels, args.key)
    for label, (epochs, values) in curves.items():
        print(f'{label}: epoch {int(epochs[-1])} purity {values[-1]:.1f}%')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
