"""Loss, purity, online kNN top-1, learning rate and the collapse monitor per epoch, one PNG,
several runs overlaid.

    python tools/analysis/plot_curves.py WORK_DIR [WORK_DIR ...] [--labels A B] [--out FILE]
Reads the scalars mmengine logged (<work_dir>/<timestamp>/vis_data/scalars.json); works while
a run trains. Default output: <first work_dir>/curves.png.
"""
import argparse
import os.path as osp
import sys

# this checkout's mmmsf first, installed or not: `python tools/analysis/<tool>.py` puts only
# tools/analysis on the path
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmsf.visualization.training_curves import plot_training_curves, summary_lines  # noqa: E402


def main():
    p = argparse.ArgumentParser(description='training curves of one or more runs')
    p.add_argument('work_dirs', nargs='+')
    p.add_argument('--labels', nargs='+', help='one legend label per work_dir')
    p.add_argument('--out', help='PNG to write (default <first work_dir>/curves.png)')
    args = p.parse_args()
    out = args.out or osp.join(args.work_dirs[0], 'curves.png')
    data = plot_training_curves(args.work_dirs, out, args.labels)
    for line in summary_lines(data):
        print(line)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
