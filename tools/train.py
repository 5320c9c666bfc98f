"""Pre-train MSF / CMSF with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v]
                                 [--no-validate] [--tensorboard]
    bash tools/dist_train.sh CONFIG NUM_GPUS [...]
"""
from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.apis.cli import default_argument_parser, run_tool
from mmmsf.apis.train import disable_validation, enable_tensorboard


def parse_args():
    p = default_argument_parser('Pre-train a mean-shift model.', work_dir=True, launcher=True)
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
    run_tool(main)
