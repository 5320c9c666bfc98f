"""kNN accuracy (1-NN / 20-NN, paper Table 2) of a pre-trained checkpoint.

    python tools/knn_eval.py CONFIG CHECKPOINT [--weighted] [--ks 1 20] [--cache-dir DIR]
    python tools/knn_eval.py CONFIG --random-init      # the random-initialisation baseline

Unweighted majority vote as in the paper (``--weighted``: similarity-weighted vote,
``exp(s / T)``). Features are cached with ``--cache-dir`` (recomputed when the weights or images
change). The result is printed and written to <checkpoint folder>/eval/knn_<checkpoint>.json
(with ``--random-init``: work_dirs/eval/knn_random_init.json; ``--out`` elsewhere), which
tools/analysis/results_table.py reads; the path is printed.
"""
import json
import os.path as osp

from mmmsf.apis import knn_from_config, load_config
from mmmsf.apis.cli import default_argument_parser
from mmmsf.apis.evaluate import write_knn_results


def main():
    p = default_argument_parser('kNN evaluation of a frozen backbone.', checkpoint=True,
                                device=True)
    p.add_argument('--weighted', action='store_true', help='similarity-weighted vote')
    p.add_argument('--temperature', type=float, help='temperature T of the weighted vote')
    p.add_argument('--ks', type=int, nargs='+', help='values of k (default: knn_cfg.ks)')
    p.add_argument('--cache-dir', help='cache extracted features here')
    p.add_argument('--out', help='result JSON (default <checkpoint folder>/eval/knn_*.json)')
    args = p.parse_args()
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    knn_cfg = dict(cfg.get('knn_cfg', {}))
    if args.ks:
        knn_cfg['ks'] = tuple(args.ks)
    if args.temperature is not None:
        knn_cfg['temperature'] = args.temperature
    cfg.knn_cfg = knn_cfg
    ckpt = None if args.random_init else args.checkpoint
    res = knn_from_config(cfg, ckpt, cache_dir=args.cache_dir,
                          weighted=args.weighted or None, device=args.device)
    print(json.dumps(res))
    out = write_knn_results(res, ckpt, args.config, out=args.out,
                            weighted=bool(args.weighted or knn_cfg.get('weighted', False)))
    print(f'written to {osp.abspath(out)}')


if __name__ == '__main__':
    main()
