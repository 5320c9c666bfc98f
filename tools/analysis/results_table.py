"""Markdown table of several runs (kNN, linear, purity) in the shape of the MSF paper's Table 2.

    python tools/analysis/results_table.py work_dirs/msf_ws work_dirs/msf_ss \
        [--names "MSF w/s" "MSF s/s"] [--paper] [--out table.md]
Each run folder is a pre-training work_dir; its kNN/linear numbers come from the eval/*.json
files that tools/knn_eval.py and tools/linear_eval.py write below it.
"""
import argparse
import os.path as osp
import sys

# this checkout's mmmsf first, installed or not: `python tools/analysis/<tool>.py` puts only
# tools/analysis on the path
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmmsf.evaluation.results_table import format_table, gather_run  # noqa: E402


def main():
    p = argparse.ArgumentParser(description='results table (paper Table 2)')
    p.add_argument('runs', nargs='+')
    p.add_argument('--names', nargs='+', help='one method name per run')
    p.add_argument('--paper', action='store_true', help="append the paper's ImageNet rows")
    p.add_argument('--out', help='also write the table to this file')
    args = p.parse_args()
    if args.names and len(args.names) != len(args.runs):
        p.error(f'{len(args.names)} names for {len(args.runs)} runs')
    names = args.names or [None] * len(args.runs)
    table = format_table([gather_run(r, n) for r, n in zip(args.runs, names)], args.paper)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
