"""Decode every image of a config's datasets (training, kNN memory / query, validation) once,
as training decodes them, and list the unreadable ones -- before a long run finds them.

    python tools/check_images.py CONFIG [--data-root DIR] [--workers 8] [--cfg-options k=v]

Exit status 1 when any image is unreadable (each is printed with the reason), 0 otherwise.
"""
import os
import sys

from mmmsf.apis.check_images import check_images
from mmmsf.apis.cli import default_argument_parser
from mmmsf.apis.config import load_config


def main() -> int:
    p = default_argument_parser('Find unreadable images before training.')
    p.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1))
    args = p.parse_args()
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    n, bad = check_images(cfg, args.workers)
    for path, err in bad:
        print(err if path in err else f'{path}: {err}')
    print(f'{n} images read, {len(bad)} unreadable.')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
