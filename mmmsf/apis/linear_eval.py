"""Linear evaluation of a pre-trained checkpoint with mmengine's Runner (paper Table 2 and 3).

    cfg = load_config('configs/benchmarks/linear/linear_r50_imagenet.py')
    cfg = prepare_linear_cfg(cfg, 'work_dirs/msf/epoch_200.pth')
    metrics = linear_eval(cfg)                     # {'top1': .., 'top5': ..}

``precompute=True`` first extracts the frozen features of the training set (validation
transform, i.e. no training augmentation) and of the validation set once, caches them, and
trains the same standardised linear layer on them: a fast probe, not the paper's protocol
(which augments the training images every epoch).
"""
import copy
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.dist import init_dist, is_distributed
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmmsf.evaluation.feature_extraction import extract_features
from mmmsf.registry import MODELS
from .config import set_data_root
from .train import init_cpu_distributed, prepare_train_cfg


def set_eval_data_root(cfg: Config, data_root: str) -> None:
    """``--data-root``: every dataloader's root, including ``linear_cfg.stats_dataloader``."""
    set_data_root(cfg, data_root)
    stats = cfg.get('linear_cfg', {}).get('stats_dataloader')
    if stats is not None and 'dataset' in stats:
        stats['dataset']['data_root'] = data_root


def default_linear_work_dir(cfg: Config, checkpoint: Optional[str]) -> str:
    """``<checkpoint folder>/linear/<config>_<checkpoint>`` (random init: ``work_dirs/linear/``)."""
    name = osp.splitext(osp.basename(cfg.filename or 'linear'))[0]
    if checkpoint:
        stem = osp.splitext(osp.basename(checkpoint))[0]
        return osp.join(osp.dirname(osp.abspath(checkpoint)), 'linear', f'{name}_{stem}')
    return osp.join('work_dirs', 'linear', f'{name}_random_init')


def prepare_linear_cfg(cfg: Config, checkpoint: Optional[str], work_dir: Optional[str] = None,
                       launcher: str = 'none', prefix: Optional[str] = None,
                       resume: Optional[str] = None) -> Config:
    """Point the probe at ``checkpoint`` (None: random init) and fill in the run settings."""
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist.')
    if cfg.model.get('type') != 'LinearProbe':
        raise ValueError(f'{cfg.filename} is not a linear-evaluation config (model.type is '
                         f'{cfg.model.get("type")!r}); use configs/benchmarks/linear/*.py.')
    cfg.model.pretrained = checkpoint
    if prefix is not None:
        cfg.model.pretrained_prefix = prefix
    return prepare_train_cfg(cfg, work_dir or default_linear_work_dir(cfg, checkpoint),
                             resume=resume, launcher=launcher)


def _init_dist(cfg: Config) -> None:
    """Start the process group before the Runner does (gloo on CPU-only machines)."""
    launcher = cfg.get('launcher', 'none')
    init_cpu_distributed(launcher)
    if launcher != 'none' and not is_distributed():
        init_dist(launcher, **cfg.get('env_cfg', {}).get('dist_cfg', {}))


def precompute_linear_features(cfg: Config, feature_dir: Optional[str] = None) -> Config:
    """Extract (or reuse) the frozen features and return a config that trains on them.

    Features: training set through ``linear_cfg.stats_dataloader`` (validation transform) and
    the validation set, raw (the probe's standardiser L2-normalises them), cached as
    ``<feature_dir>/{train,val}.npz`` (default ``<work_dir>/features``).
    """
    _init_dist(cfg)
    init_default_scope(cfg.get('default_scope', 'mmmsf'))
    feature_dir = feature_dir or osp.join(cfg.work_dir, 'features')
    torch.manual_seed(cfg.get('randomness', {}).get('seed', 0) or 0)
    model = MODELS.build(cfg.model)
    if model.backbone is None:
        raise ValueError('the config already trains on pre-computed features.')
    model.init_weights()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    stats_loader = cfg.get('linear_cfg', {}).get('stats_dataloader')
    if stats_loader is None:
        raise KeyError('linear_cfg.stats_dataloader (the training set with the validation '
                       'pipeline) is needed to pre-compute the features.')
    files = {}
    for split, loader_cfg in (('train', stats_loader), ('val', cfg.val_dataloader)):
        loader = Runner.build_dataloader(copy.deepcopy(loader_cfg))
        files[split] = osp.join(feature_dir, f'{split}.npz')
        extract_features(model, loader, device, cache_file=files[split], normalize=False)
    out = copy.deepcopy(cfg)
    model_cfg = dict(out.model)  # replace (not merge) the entries below
    model_cfg.update(backbone=None, feat_dim=model.feat_dim, pretrained=None,
                     data_preprocessor=dict(type='BaseDataPreprocessor'))
    out.model = model_cfg

    def feature_loader(split: str, base: dict, shuffle: bool) -> dict:
        return dict(batch_size=base['batch_size'], num_workers=0, persistent_workers=False,
                    sampler=dict(type='DefaultSampler', shuffle=shuffle),
                    collate_fn=dict(type='default_collate'),
                    dataset=dict(type='FeatureDataset', feature_file=files[split]))

    out.train_dataloader = feature_loader('train', cfg.train_dataloader, True)
    out.val_dataloader = feature_loader('val', cfg.val_dataloader, False)
    out.linear_cfg = dict(cfg.get('linear_cfg', {}),
                          stats_dataloader=feature_loader('train', cfg.train_dataloader, False),
                          precomputed_from=cfg.model.get('pretrained'),
                          train_subset=cfg.train_dataloader.dataset.get('ann_file') or None)
    out.test_dataloader = out.test_cfg = out.test_evaluator = None
    return out


def linear_eval(cfg: Config, precompute: Optional[bool] = None,
                feature_dir: Optional[str] = None) -> Dict[str, float]:
    """Train the probe with mmengine's Runner; returns the last validation's metrics
    (``top1``, ``top5`` in percent), also written to ``<work_dir>/eval/linear.json``."""
    if precompute is None:
        precompute = bool(cfg.get('linear_cfg', {}).get('precompute_features', False))
    if precompute:
        cfg = precompute_linear_features(cfg, feature_dir)
    hooks = list(cfg.get('custom_hooks', []))
    if not any(h.get('type') == 'EvalResultsHook' for h in hooks):
        hooks.append(dict(type='EvalResultsHook', kind='linear'))
    if not any(h.get('type') == 'FeatureStatisticsHook' for h in hooks):
        hooks.insert(0, dict(type='FeatureStatisticsHook'))
    cfg.custom_hooks = hooks
    _init_dist(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    recorder = next(h for h in runner.hooks if type(h).__name__ == 'EvalResultsHook')
    if not recorder.history:
        raise RuntimeError('the linear probe was never validated: check train_cfg.val_interval '
                           'and val_dataloader.')
    last = dict(recorder.history[-1])
    last.pop('epoch', None)
    return last
