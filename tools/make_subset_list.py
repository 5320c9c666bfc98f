"""Write a class-balanced labelled-subset list (the format of the ImageNet 1% / 10% lists).

    python tools/make_subset_list.py data/cifar10_mini/train 0.1 subset_10percent.txt [--seed 0]
For ImageNet use the public lists (SimCLR's 1percent.txt / 10percent.txt) as they are.
"""
import argparse

from mmmsf.datasets.label_subset import make_subset_list, write_subset_list


def main():
    p = argparse.ArgumentParser(description='class-balanced subset list of an image folder')
    p.add_argument('img_root', help='split folder with <class>/<image> files')
    p.add_argument('fraction', type=float, help='e.g. 0.01 or 0.1')
    p.add_argument('out')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--min-per-class', type=int, default=1)
    args = p.parse_args()
    lines = make_subset_list(args.img_root, args.fraction, args.seed, args.min_per_class)
    write_subset_list(lines, args.out)
    print(f'wrote {len(lines)} images to {args.out}')


if __name__ == '__main__':
    main()
