"""kNN accuracy (1-NN / 20-NN, paper Table 2) of a pre-trained checkpoint.

    python tools/knn_eval.py CONFIG CHECKPOINT [--weighted] [--cache-dir DIR]
    python tools/knn_eval.py CONFIG --random-init      # the random-initialisation baseline
"""
import argparse
import json

from mmengine.config import DictAction

from mmmsf.apis import knn_from_config, load_config


def main():
    p = argparse.ArgumentParser(description='kNN evaluation of a frozen backbone.')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?')
    p.add_argument('--random-init', action='store_true', help='evaluate the untrained model')
    p.add_argument('--weighted', action='store_true', help='similarity-weighted vote')
    p.add_argument('--cache-dir', help='cache extracted features here')
    p.add_argument('--data-root')
    p.add_argument('--device')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args()
    if not args.checkpoint and not args.random_init:
        p.error('give a CHECKPOINT or --random-init')
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    res = knn_from_config(cfg, None if args.random_init else args.checkpoint,
                          cache_dir=args.cache_dir, weighted=args.weighted or None,
                          device=args.device)
    print(json.dumps(res))


if __name__ == '__main__':
    main()
