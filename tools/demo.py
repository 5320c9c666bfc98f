"""Demo: MSF w/s on the bundled CIFAR-10 JPEGs on the CPU, then 1-NN / 20-NN vs. random init."""
import argparse

from mmmsf.apis import format_demo, run_demo
from mmmsf.apis.demo import DEMO_CONFIG


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--config', default=DEMO_CONFIG)
    p.add_argument('--work-dir', default='work_dirs/demo_msf')
    p.add_argument('--data-root', help='e.g. a full CIFAR-10 ImageFolder copy')
    args = p.parse_args()
    result = run_demo(args.config, args.work_dir, args.data_root)
    print('\nkNN top-1 (%) on the test split, frozen backbone:')
    print(format_demo(result))
    print(f"training curves (loss, purity, kNN, lr, collapse monitor): {result['curves']}")


if __name__ == '__main__':
    main()
