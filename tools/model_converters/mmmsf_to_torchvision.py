"""Export the online backbone of an mmmsf checkpoint as a torchvision ResNet state dict.

    python tools/model_converters/mmmsf_to_torchvision.py CKPT.pth resnet50_msf.pth
    # then: torchvision.models.resnet50().load_state_dict(torch.load(...), strict=False)
    #       (only fc.weight / fc.bias are missing)
"""
import argparse

from mmmsf.apis.convert import export_torchvision


def main():
    p = argparse.ArgumentParser(description='mmmsf checkpoint -> torchvision ResNet weights')
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--prefix', default='backbone.',
                   help="'backbone.' (online, default) or 'target_backbone.' (EMA target)")
    args = p.parse_args()
    n = export_torchvision(args.src, args.dst, args.prefix)
    print(f'wrote {n} tensors to {args.dst}')


if __name__ == '__main__':
    main()
