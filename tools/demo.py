"""Demo: MSF w/s on the bundled CIFAR-10 JPEGs on the CPU; kNN against random init and raw pixels.

    python tools/demo.py                          # one run (seed of the config), summary block
    python tools/demo.py --seeds 0 1 2 3 4        # the README's table: spread over five seeds
"""
import json
import os.path as osp

from mmmsf.apis import format_demo, run_demo
from mmmsf.apis.cli import default_argument_parser
from mmmsf.apis.demo import DEMO_CONFIG, format_seeds, run_demo_seeds
from mmmsf.utils.machine import machine_name


def main():
    p = default_argument_parser(__doc__, config=False, work_dir=True)
    p.set_defaults(work_dir='work_dirs/demo_msf')
    p.add_argument('--config', default=DEMO_CONFIG)
    p.add_argument('--seed', type=int, help='training seed (default: the config\'s)')
    p.add_argument('--seeds', type=int, nargs='+',
                   help='run once per seed and print mean ± std (min-max) over them')
    args = p.parse_args()
    if args.seeds:
        out = run_demo_seeds(args.seeds, args.config, args.work_dir, args.data_root,
                             args.cfg_options, machine=machine_name())
        print('\n' + format_seeds(out))
        print(f"\nper-seed results: {osp.join(args.work_dir, 'seeds.json')}")
        return
    result = run_demo(args.config, args.work_dir, args.data_root, args.cfg_options, args.seed)
    summary = {k: v for k, v in result.items() if k != 'correct'}
    with open(osp.join(args.work_dir, 'demo_result.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(format_demo(result))
    print(f"training curves (loss, purity, kNN, lr, collapse monitor): {result['curves']}")


if __name__ == '__main__':
    main()
