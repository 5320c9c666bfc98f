"""Linear transfer evaluation of one checkpoint on a list of datasets; prints one table
(MSF paper Table 4).

    python tools/transfer_eval.py configs/benchmarks/linear/transfer_r50_10datasets.py CKPT
    python tools/transfer_eval.py CONFIG CKPT --datasets cifar10=/data/cifar10-jpg \
        pets=/data/pets:mean_per_class [--cache-dir DIR]

Every dataset is an ImageFolder root with train/ and test/ splits (<split>/<class>/<image>).
The result is also written to <checkpoint folder>/eval/transfer_<checkpoint>.json.
"""
import os.path as osp

from mmmsf.apis import load_config
from mmmsf.apis.cli import default_argument_parser
from mmmsf.apis.transfer_eval import (format_transfer_table, parse_dataset_args, transfer_eval,
                                      write_transfer_results)


def main():
    p = default_argument_parser('Linear transfer evaluation on several datasets.',
                                checkpoint=True, data_root=False, device=True)
    p.add_argument('--datasets', nargs='+', metavar='NAME=ROOT[:METRIC]',
                   help='evaluate on these instead of the config\'s list')
    p.add_argument('--cache-dir', help='cache the extracted features here')
    p.add_argument('--out', help='result JSON (default <checkpoint folder>/eval/...)')
    args = p.parse_args()
    ckpt = None if args.random_init else args.checkpoint
    cfg = load_config(args.config, args.cfg_options)
    datasets = parse_dataset_args(args.datasets) if args.datasets else None
    results = transfer_eval(cfg, ckpt, datasets, args.cache_dir, args.device)
    title = osp.basename(ckpt) if ckpt else 'random init'
    print(format_transfer_table(results, title))
    out = write_transfer_results(results, ckpt, args.config, out=args.out)
    print(f'written to {out}')


if __name__ == '__main__':
    main()
