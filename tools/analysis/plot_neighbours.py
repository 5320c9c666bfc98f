"""Nearest neighbours of fixed query images across epochs (MSF paper Fig. 2), as a PNG.

    python tools/analysis/plot_neighbours.py WORK_DIR [--queries 0 1 2] [--epochs 0 5 20] \
        [--k 5] --out neighbours.png
Needs the snapshots of NeighbourSnapshotHook (custom_hooks of the training config).
"""
import argparse
import os.path as osp
import sys

# this checkout's mmmsf first, installed or not: `python tools/analysis/<tool>.py` puts only
# tools/analysis on the path
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmsf.visualization import plot_neighbours  # noqa: E402


def main():
    p = argparse.ArgumentParser(description='nearest neighbours across epochs (paper Fig. 2)')
    p.add_argument('work_dir')
    p.add_argument('--queries', type=int, nargs='+', help='query numbers (default 0..3)')
    p.add_argument('--epochs', type=int, nargs='+', help='snapshot epochs (default: spread)')
    p.add_argument('--k', type=int, help='neighbours per row (default: all saved)')
    p.add_argument('--out', default='neighbours.png')
    args = p.parse_args()
    drawn = plot_neighbours(args.work_dir, args.out, args.queries, args.epochs, args.k)
    for e in drawn['epochs']:
        hits = [sum(row) / len(row) for row in drawn['correct'][e]]
        print(f'epoch {e}: same-class neighbours {100 * sum(hits) / len(hits):.0f}%')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
