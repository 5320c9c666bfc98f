"""Loading and checking configs for mmmsf's tools."""
import difflib
import os.path as osp
from typing import Dict, List, Optional

from mmengine.config import Config, DictAction  # noqa: F401  (re-exported for tools)

# Top-level keys that mmengine's Runner.from_cfg or mmmsf's tools read. Anything else is a
# typo that mmengine would silently ignore.
KNOWN_TOP_LEVEL_KEYS = {
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator',
    'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'cfg', 'model_wrapper_cfg', 'strategy',
    'compile', 'sync_bn', 'find_unused_parameters', 'vis_backends', 'custom_imports',
    # mmmsf
    'knn_train_dataloader', 'knn_test_dataloader', 'knn_cfg', 'linear_cfg', 'transfer_cfg',
    'data_root',
    'max_epochs', 'max_iters', 'analysis_cfg',
}
# Variables of pipeline building blocks that configs define for inheritance.
PIPELINE_VARIABLE_SUFFIXES = ('_pipeline', '_pipelines')


def check_config_keys(cfg: Config, extra_known: Optional[List[str]] = None) -> None:
    """Raise ``KeyError`` for unknown top-level keys, suggesting the closest known one."""
    known = KNOWN_TOP_LEVEL_KEYS | set(extra_known or [])
    unknown = [k for k in cfg.keys() if k not in known and not k.endswith(PIPELINE_VARIABLE_SUFFIXES)
               and not k.startswith('_')]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(known), n=1)
            hints.append(f'{k!r}' + (f' (did you mean {close[0]!r}?)' if close else ''))
        raise KeyError(f'unknown config key(s) {", ".join(hints)} in {cfg.filename}: fix the '
                       'spelling or remove them.')


def load_config(path: str, cfg_options: Optional[Dict] = None,
                data_root: Optional[str] = None) -> Config:
    """Read a config, apply ``--cfg-options`` and an optional data-root override, check keys."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} does not exist.')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    check_config_keys(cfg)
    return cfg


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset (and nested datasets) at ``data_root``."""
    def visit(node):
        if isinstance(node, dict):
            if 'data_root' in node:
                node['data_root'] = data_root
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)
    for key in list(cfg.keys()):
        if key.endswith('dataloader'):
            visit(cfg[key])
    cfg.data_root = data_root
