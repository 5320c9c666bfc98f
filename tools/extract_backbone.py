"""Extract the online backbone of an mmmsf checkpoint as a plain torchvision-style state dict.

    python tools/extract_backbone.py CHECKPOINT OUT.pth
The result loads into ``torchvision.models.resnet50()`` (``strict=False``: no ``fc``) and into
mmdet's ``ResNet`` via ``init_cfg=dict(type='Pretrained', checkpoint=OUT.pth)``.
"""
import argparse

from mmmsf.utils.model_io import extract_backbone


def main():
    p = argparse.ArgumentParser(description='Extract the backbone weights.')
    p.add_argument('checkpoint')
    p.add_argument('out')
    p.add_argument('--prefix', default='backbone.', help="key prefix to keep ('backbone.')")
    args = p.parse_args()
    n = extract_backbone(args.checkpoint, args.out, args.prefix)
    print(f'wrote {n} tensors to {args.out}')


if __name__ == '__main__':
    main()
