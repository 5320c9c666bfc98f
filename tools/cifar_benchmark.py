"""The CPU-hour CIFAR benchmark: MSF (k = 5) and BYOL-asym (k = 1) pre-trained with one recipe,
scored by kNN against random init and raw pixels, with paired-bootstrap intervals.

    python tools/cifar_benchmark.py --data-root ../shared/data/cifar10-jpg       # 20,000 / 2,000
    python tools/cifar_benchmark.py --data-root DIR --seeds 0 1 2                 # three seeds each
    python tools/cifar_benchmark.py --data-root DIR --page /tmp/p.md --no-export  # elsewhere

Runs of one work dir may train in parallel processes (e.g. one per core: `--configs A --page ''`
and `--configs B --page ''`, then the plain command writes the page from both).

DIR is any CIFAR-10 ImageFolder with train/ and test/ (e.g. the full 50,000 / 10,000). Writes
<work-dir>/results.json; re-running continues an interrupted benchmark (finished runs are kept,
an interrupted run resumes from its last checkpoint). Then writes the results page and its curve
image (default docs/benchmarks/cifar_hour.md), exports the first config's backbone to
checkpoints/<config stem>.pth and, with --readme, fills the README's table.
"""
from mmmsf.apis.cifar_benchmark import BENCHMARK_CONFIGS, run_cifar_benchmark
from mmmsf.apis.cli import default_argument_parser
from mmmsf.utils.machine import machine_name


def parse_args(argv=None):
    p = default_argument_parser(__doc__, config=False, work_dir=True)
    p.set_defaults(work_dir='work_dirs/cifar_benchmark')
    p.add_argument('--configs', nargs='+', default=list(BENCHMARK_CONFIGS),
                   help='first = the shipped run; the first two are compared')
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--page', default='docs/benchmarks/cifar_hour.md',
                   help="results page ('' : train and score only)")
    p.add_argument('--checkpoint-dir', default='checkpoints')
    p.add_argument('--no-export', action='store_true', help='do not write checkpoints/')
    p.add_argument('--readme', help='fill this README\'s cifar-hour table (e.g. README.md)')
    return p.parse_args(argv)


def main():
    args = parse_args()
    export = not args.no_export and bool(args.page)
    run_cifar_benchmark(args.configs, args.seeds, args.data_root, args.work_dir, args.page or None,
                        args.checkpoint_dir if export else None, args.readme,
                        args.cfg_options, machine=machine_name())
    if args.page:
        print(f'results page: {args.page}')


if __name__ == '__main__':
    main()
