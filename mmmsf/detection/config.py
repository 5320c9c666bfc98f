"""Loading detection configs and pointing their ``mmmsf.PretrainedResNet`` inits at a checkpoint."""
import copy
import os
import os.path as osp
from functools import lru_cache
from typing import Dict, Iterator, List, Optional

from mmengine.config import Config

from mmmsf.apis.config import check_config_keys, import_custom_modules, set_data_root

PRETRAINED_TYPES = ('mmmsf.PretrainedResNet', 'PretrainedResNet')
# Top-level names that mmdet's base configs and ours define besides the Runner's keys.
DETECTION_KEYS = ['backend_args', 'dataset_type', 'custom_imports', 'max_iter', 'norm_cfg',
                  'vis_backends', 'METAINFO', 'iou_thrs', 'image_scale', 'train_scales',
                  'rpn_num_proposals', 'width']


@lru_cache(maxsize=8)
def _parse(path: str, mtime: float) -> Config:
    # mmengine resolves each 'mmdet::' base by scanning all of mmdet's model-index YAML files
    # (seconds); --repeat and the tests read the same config many times in one process.
    return Config.fromfile(path)


def load_detection_config(path: str, cfg_options: Optional[Dict] = None,
                          data_root: Optional[str] = None) -> Config:
    """Read a detection config, apply ``--cfg-options`` and ``--data-root``, check its keys."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} does not exist.')
    cfg = copy.deepcopy(_parse(osp.abspath(path), os.stat(path).st_mtime))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    import_custom_modules(cfg)
    check_config_keys(cfg, DETECTION_KEYS)
    return cfg


def _init_cfg_owners(node, path: str = 'model') -> Iterator[tuple]:
    """(path, owner dict) of every ``init_cfg`` of type mmmsf.PretrainedResNet in the model."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        inits = init if isinstance(init, list) else [init]
        if any(isinstance(i, dict) and i.get('type') in PRETRAINED_TYPES for i in inits):
            yield path, node
        for k, v in node.items():
            if k != 'init_cfg':
                yield from _init_cfg_owners(v, f'{path}.{k}')


def pretrained_checkpoints(cfg: Config) -> Dict[str, Optional[str]]:
    """``{module path: checkpoint}`` of the model's mmmsf.PretrainedResNet inits."""
    out = {}
    for path, owner in _init_cfg_owners(cfg.model):
        inits = owner['init_cfg'] if isinstance(owner['init_cfg'], list) else [owner['init_cfg']]
        out[path] = next(i.get('checkpoint') for i in inits
                         if isinstance(i, dict) and i.get('type') in PRETRAINED_TYPES)
    return out


def set_pretrained(cfg: Config, checkpoint: Optional[str] = None,
                   scratch: bool = False) -> List[str]:
    """Point every mmmsf.PretrainedResNet init of ``cfg.model`` at ``checkpoint``, or, with
    ``scratch``, replace them by mmdet's default initialisation; returns the module paths.

    Without either, every such init must already name a checkpoint (e.g. via --cfg-options).
    """
    owners = list(_init_cfg_owners(cfg.model))
    if checkpoint and not owners:
        raise KeyError(f'{cfg.filename} has no init_cfg of type mmmsf.PretrainedResNet, so '
                       '--pretrained has nothing to initialise; use a config of '
                       'configs/benchmarks/detection/.')
    for _, owner in owners:
        if scratch:
            owner['init_cfg'] = None
            continue
        inits = owner['init_cfg'] if isinstance(owner['init_cfg'], list) else [owner['init_cfg']]
        for init in inits:
            if isinstance(init, dict) and init.get('type') in PRETRAINED_TYPES and checkpoint:
                init['checkpoint'] = checkpoint
    if not scratch:
        unset = [p for p, c in pretrained_checkpoints(cfg).items() if not c]
        if unset:
            raise ValueError(f'{", ".join(unset)} would start from no checkpoint: pass '
                             '--pretrained CKPT (an mmmsf checkpoint or an extracted backbone), '
                             'or --scratch for a randomly initialised baseline.')
    return [p for p, _ in owners]
