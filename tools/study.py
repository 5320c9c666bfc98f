"""The fidelity study: the papers' ablations at a fixed small budget, then table and plots.

    python tools/study.py --data-root ../shared/data/cifar10-jpg --out docs/study
    python tools/study.py --quick --out /tmp/study_quick      # minutes: checks the driver
Interrupted studies continue where they stopped (finished runs are kept in results.json).
"""
import argparse
import os
import os.path as osp
import sys

from mmmsf.apis.study import STUDY_RUNS, run_study
from mmmsf.apis.study_report import write_report

FULL = dict(epochs=20, batch_size=128, width=8, bank_size=4096, num_workers=2,
            num_clusters=300)
QUICK = dict(epochs=1, batch_size=16, width=4, bank_size=64, num_workers=0, num_clusters=10)


def _write(path: str, lines) -> str:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return osp.abspath(path)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--out', default='docs/study')
    p.add_argument('--data-root', help='ImageFolder with train/ and test/ (default: bundled)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--epochs', type=int)
    p.add_argument('--only', nargs='+', help='run only these method names')
    p.add_argument('--quick', action='store_true', help='tiny budget, 64 training images')
    args = p.parse_args()
    budget = dict(QUICK if args.quick else FULL)
    if args.epochs:
        budget['epochs'] = args.epochs
    labelled = None
    if args.quick:  # 8 training images per class, the first of each labelled
        os.makedirs(args.out, exist_ok=True)
        root = args.data_root or 'data/cifar10_mini'
        classes = sorted(os.listdir(osp.join(root, 'train')))
        files = {c: sorted(os.listdir(osp.join(root, 'train', c)))[:8] for c in classes}
        budget['ann_file'] = _write(osp.join(args.out, 'quick_subset.txt'),
                                    [f'{c}/{x}' for c in classes for x in files[c]])
        labelled = _write(osp.join(args.out, 'quick_labelled.txt'),
                          [f'{c}/{files[c][0]}' for c in classes])
        tests = {c: sorted(os.listdir(osp.join(root, 'test', c)))[:4] for c in classes}
        budget['test_ann_file'] = _write(osp.join(args.out, 'quick_test.txt'),
                                         [f'{c}/{x}' for c in classes for x in tests[c]])
    runs = [r for r in STUDY_RUNS if not args.only or r['name'] in args.only]
    unknown = set(args.only or []) - {r['name'] for r in STUDY_RUNS}
    if unknown:
        p.error(f'unknown method(s) {sorted(unknown)}; choose from '
                f'{[r["name"] for r in STUDY_RUNS]}')
    results = run_study(args.out, budget, args.seeds, args.data_root, runs, labelled)
    report = write_report(results | {'_budget': budget}, args.out,
                          'python ' + ' '.join(sys.argv))
    print(report['table'])


if __name__ == '__main__':
    main()
