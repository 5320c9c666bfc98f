"""Export the backbone of an mmmsf checkpoint for mmdet detectors (paper Table 5, VOC).

    python tools/model_converters/mmmsf_to_mmdet.py CKPT.pth msf_r50_c4.pth [--layout c4|fpn]
    # detector config: load_from = 'msf_r50_c4.pth'
C4 (Faster R-CNN R50-C4, MoCo's VOC protocol): res2-4 -> backbone.*, res5 ->
roi_head.shared_head.layer4.*; FPN: every stage -> backbone.*.
"""
import argparse

from mmmsf.apis.convert import export_mmdet


def main():
    p = argparse.ArgumentParser(description='mmmsf checkpoint -> mmdet detector weights')
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--layout', choices=['c4', 'fpn'], default='c4')
    p.add_argument('--prefix', default='backbone.')
    args = p.parse_args()
    n = export_mmdet(args.src, args.dst, args.prefix, args.layout)
    print(f'wrote {n} tensors to {args.dst}')


if __name__ == '__main__':
    main()
