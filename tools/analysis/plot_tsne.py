"""t-SNE of L2-normalised embeddings of a few classes at several epochs (MSF paper Table 2,
right), as a PNG.

    python tools/analysis/plot_tsne.py WORK_DIR [--epochs 0 10 20] [--classes 0 1 2] --out t.png
        # from the snapshots of NeighbourSnapshotHook
    python tools/analysis/plot_tsne.py --config CONFIG --checkpoints A.pth B.pth --out t.png
        # from checkpoints: backbone features of the config's knn_test_dataloader images
"""
import argparse
import os.path as osp
import sys

# this checkout's mmmsf first, installed or not: `python tools/analysis/<tool>.py` puts only
# tools/analysis on the path
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np  # noqa: E402

from mmmsf.apis.evaluate import embeddings_from_checkpoint  # noqa: E402
from mmmsf.visualization import plot_tsne, plot_tsne_panels  # noqa: E402
from mmmsf.visualization.tsne import pick_classes  # noqa: E402


def main():
    p = argparse.ArgumentParser(description='epoch-wise t-SNE (paper Table 2, right)')
    p.add_argument('work_dir', nargs='?')
    p.add_argument('--epochs', type=int, nargs='+')
    p.add_argument('--classes', type=int, nargs='+', help='class ids (default: most frequent)')
    p.add_argument('--num-classes', type=int, default=10)
    p.add_argument('--config', help='with --checkpoints: embed the images of this config')
    p.add_argument('--checkpoints', nargs='+')
    p.add_argument('--max-per-class', type=int, default=100)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='tsne.png')
    args = p.parse_args()
    if args.checkpoints:
        if not args.config:
            p.error('--checkpoints needs --config')
        from mmmsf.apis import load_config
        cfg = load_config(args.config)
        panels, keep = {}, None
        for ckpt in args.checkpoints:
            x, y = embeddings_from_checkpoint(cfg, ckpt)
            if keep is None:
                classes = pick_classes(y, args.num_classes, args.classes)
                rng = np.random.default_rng(args.seed)
                keep = np.sort(np.concatenate([
                    rng.permutation(np.flatnonzero(y == c))[:args.max_per_class]
                    for c in classes]))
            panels[osp.basename(ckpt)] = (x[keep], y[keep])
        plot_tsne_panels(panels, args.out, seed=args.seed)
    else:
        if not args.work_dir:
            p.error('give a WORK_DIR (snapshots) or --config with --checkpoints')
        plot_tsne(args.work_dir, args.out, args.epochs, args.num_classes, args.classes,
                  seed=args.seed)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
