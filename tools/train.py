"""Pre-train MSF / CMSF with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v]
                                 [--no-validate] [--tensorboard]
    bash tools/dist_train.sh CONFIG NUM_GPUS [...]
"""
import argparse

from mmmsf.apis.config import DictAction

from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.apis.train import disable_validation, enable_tensorboard


def parse_args():
    p = argparse.ArgumentParser(description='Pre-train a mean-shift model.')
    p.add_argument('config')
    p.add_argument('--work-dir', help='where logs and checkpoints go')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='resume from CKPT, or from the latest checkpoint of work-dir if no CKPT')
    p.add_argument('--resume-if-any', dest='resume', action='store_const', const='if-any',
                   help='resume from the latest checkpoint of work-dir if there is one, else '
                   'start fresh (and say so)')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision')
    p.add_argument('--no-validate', action='store_true',
                   help='no online kNN validation during training')
    p.add_argument('--tensorboard', action='store_true',
                   help='also log scalars to TensorBoard (<work_dir>/<timestamp>/vis_data)')
    p.add_argument('--data-root', help='override the data_root of every dataset')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return p.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.data_root)
    cfg = prepare_train_cfg(cfg, args.work_dir, args.resume, args.amp, args.launcher)
    if args.no_validate:
        disable_validation(cfg)
    if args.tensorboard:
        enable_tensorboard(cfg)
    train(cfg)


if __name__ == '__main__':
    from mmmsf.apis.cli import run_tool
    run_tool(main)
