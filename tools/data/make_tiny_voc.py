"""Write the tiny VOC-format detection set (real CIFAR-10 objects on generated backgrounds).

    python tools/data/make_tiny_voc.py [--src data/cifar10_mini] [--out data/cache/tiny_voc]
The result, OUT/VOCdevkit/{VOC2007,VOC2012}, is what
configs/benchmarks/detection/faster-rcnn_r18-c4_tiny-voc_cpu.py reads.
"""
import argparse

from mmmsf.utils import require_detection_stack


def main():
    p = argparse.ArgumentParser(description='Generate the tiny VOCdevkit.')
    p.add_argument('--src', default='data/cifar10_mini', help='CIFAR-10 ImageFolder root')
    p.add_argument('--out', default='data/cache/tiny_voc', help='OUT/VOCdevkit is written')
    p.add_argument('--num-images', type=int, nargs=3, default=[24, 24, 24],
                   metavar=('TRAINVAL07', 'TRAINVAL12', 'TEST07'))
    p.add_argument('--canvas', type=int, default=160, help='image side (px)')
    p.add_argument('--obj-size', type=int, nargs=2, default=[40, 72], metavar=('MIN', 'MAX'))
    p.add_argument('--max-objects', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args()
    require_detection_stack()  # one line naming the install command, before mmdet is imported
    from mmmsf.detection import make_tiny_voc
    stats = make_tiny_voc(args.src, args.out, args.num_images, args.canvas, tuple(args.obj_size),
                          args.max_objects, args.seed)
    for split, counts in stats.items():
        print(f'{split}: {sum(counts.values())} boxes ' +
              ', '.join(f'{c} {n}' for c, n in counts.items()))
    print(f'wrote {args.out}/VOCdevkit')


if __name__ == '__main__':
    main()
