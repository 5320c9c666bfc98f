"""Histogram of the ranks of CMSF's constrained neighbours at several epochs (CMSF paper,
"Histogram of constrained samples"), as a PNG.

    python tools/analysis/plot_constrained_ranks.py WORK_DIR [--epochs 1 50 200] --out r.png
Needs <work_dir>/constrained_ranks/epoch_XXXX.npz from ConstrainedRankHook; CMSF publishes the
ranks under the message-hub key 'constrained_ranks' (see
mmmsf/engine/hooks/constrained_rank_hook.py).
"""
import argparse
import os.path as osp
import sys

# this checkout's mmmsf first, installed or not: `python tools/analysis/<tool>.py` puts only
# tools/analysis on the path
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmsf.visualization import plot_constrained_ranks  # noqa: E402


def main():
    p = argparse.ArgumentParser(description='ranks of constrained neighbours (CMSF)')
    p.add_argument('work_dir')
    p.add_argument('--epochs', type=int, nargs='+')
    p.add_argument('--bins', type=int, default=30)
    p.add_argument('--out', default='constrained_ranks.png')
    args = p.parse_args()
    drawn = plot_constrained_ranks(args.work_dir, args.out, args.epochs, args.bins)
    print(f'epochs {sorted(drawn)}; wrote {args.out}')


if __name__ == '__main__':
    main()
