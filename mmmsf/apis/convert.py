"""Checkpoint conversion: the authors' MSF/CMSF checkpoints -> mmmsf; mmmsf -> torchvision/mmdet.

``convert_authors_checkpoint(src, dst)`` writes an mmmsf checkpoint that kNN, linear
evaluation and ``load_from`` accept. With ``config`` (the matching mmmsf pre-training config)
and ``iters_per_epoch`` it is also a full resume point for ``tools/train.py --resume``: the
weights are loaded strictly into the configured model, the authors' SGD momentum buffers are
moved to mmmsf's parameter order, and the config's LR schedule is advanced to the checkpoint's
epoch.
"""
import os
import os.path as osp
import warnings
from collections import OrderedDict
from typing import Dict, Iterable, Optional

import torch

from mmmsf.registry import MODELS, PARAM_SCHEDULERS
from mmmsf.utils.authors_checkpoint import (_RULES, _map, authors_to_mmmsf_state,
                                            authors_trainable_names, is_authors_state)
from mmmsf.utils.backbone_export import to_mmdet, to_torchvision
from mmmsf.utils.checkpoint import safe_load, select_prefix
from mmmsf.utils.model_io import load_state_dict
from .config import load_config


def load_authors_checkpoint(path: str) -> Dict:
    """The authors' ``{'opt', 'state_dict', 'optimizer', 'epoch'}`` (or a bare state dict), read
    with torch's safe loading (``argparse.Namespace``, the type of ``opt``, is allow-listed)."""
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path} does not hold a dict.')
    state = ckpt.get('state_dict', ckpt.get('model', ckpt))
    if not is_authors_state(state):
        raise KeyError(f"{path} has no encoder_q.* keys: it is not an authors' MSF/CMSF "
                       'checkpoint (mmmsf checkpoints need no conversion).')
    return dict(state_dict=state, optimizer=ckpt.get('optimizer'), epoch=ckpt.get('epoch'),
                opt=ckpt.get('opt'))


def _save(obj, dst: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(obj, dst)


def convert_authors_checkpoint(src: str, dst: str, config: Optional[str] = None,
                               iters_per_epoch: Optional[int] = None,
                               extra_map: Optional[Dict[str, str]] = None,
                               drop: Iterable[str] = (),
                               cfg_options: Optional[Dict] = None) -> Dict:
    """Write the mmmsf checkpoint of an authors' checkpoint; returns a summary."""
    ck = load_authors_checkpoint(src)
    epoch = int(ck['epoch'] or 0)
    state = authors_to_mmmsf_state(ck['state_dict'], epoch, extra_map, drop)
    meta = dict(epoch=epoch, converted_from=osp.abspath(src), source_format='authors-msf')
    summary = dict(epoch=epoch, tensors=len(state), resumable=False)
    if config is None:
        _save(dict(meta=meta, state_dict=state), dst)
        return summary
    if not iters_per_epoch or iters_per_epoch < 1:
        raise ValueError('a resumable conversion needs --iters-per-epoch (training images // '
                         'global batch, e.g. 1281167 // 256 = 5004 for ImageNet).')
    from mmengine.logging import MessageHub
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    cfg = load_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmmsf'))
    model = MODELS.build(cfg.model)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f'{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise KeyError(f'the converted weights do not fit {config}: missing {missing[:4]}, '
                       f'unexpected {unexpected[:4]}, shapes {wrong[:3]}. Use the config of the '
                       'same architecture, projection sizes and memory-bank size.')
    model.load_state_dict(state, strict=True)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    moved = 0
    if ck['optimizer'] is not None:
        moved = _move_sgd_state(ck['state_dict'], ck['optimizer'], model, optim_wrapper.optimizer)
    schedulers = []
    for sc in cfg.get('param_scheduler', []) or []:
        s = PARAM_SCHEDULERS.build(dict(sc), default_args=dict(optimizer=optim_wrapper))
        with warnings.catch_warnings():  # stepping a schedule without training is the point
            warnings.filterwarnings('ignore', message='Detected call of `scheduler.step')
            for _ in range(epoch if s.by_epoch else epoch * iters_per_epoch):
                s.step()
        schedulers.append(s.state_dict())
    hub = MessageHub.get_instance('mmmsf_authors_conversion')
    meta.update(iter=epoch * iters_per_epoch, seed=cfg.get('randomness', {}).get('seed'))
    _save(dict(meta=meta, state_dict=OrderedDict(model.state_dict()),
               optimizer=optim_wrapper.state_dict(), param_schedulers=schedulers,
               message_hub=hub.state_dict()), dst)
    summary.update(resumable=True, momentum_buffers=moved,
                   lr=optim_wrapper.optimizer.param_groups[0]['lr'])
    return summary


def _move_sgd_state(authors_state: Dict, authors_opt: Dict, model, optimizer) -> int:
    """Put each authors' per-parameter SGD state on the matching mmmsf parameter."""
    names = authors_trainable_names(authors_state)
    n_opt = sum(len(g['params']) for g in authors_opt['param_groups'])
    if n_opt != len(names):
        raise ValueError(f"the authors' optimiser has {n_opt} parameters but the model "
                         f'{len(names)} trainable ones: the checkpoint is inconsistent.')
    ids = [i for g in authors_opt['param_groups'] for i in g['params']]
    params = dict(model.named_parameters())
    moved = 0
    for pos, name in enumerate(names):
        st = authors_opt['state'].get(ids[pos])
        if not st:
            continue
        p = params[_map(name, _RULES)]
        optimizer.state[p] = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in st.items()}
        moved += 1
    return moved


def export_torchvision(src: str, dst: str, prefix: str = 'backbone.') -> int:
    """Save the torchvision ``ResNet`` state dict of an mmmsf checkpoint; returns #tensors."""
    sd = to_torchvision(load_state_dict(src), prefix)
    _save(sd, dst)
    return len(sd)


def export_backbone(src: str, dst: str, prefix: str = 'backbone.',
                    meta: Optional[Dict] = None) -> int:
    """Save only the ``prefix`` weights of an mmmsf checkpoint, under their mmmsf keys (what kNN,
    linear and transfer evaluation load): a small file that loads weights-only; returns
    #tensors."""
    sd = {prefix + k: v for k, v in select_prefix(load_state_dict(src), prefix, source=src).items()}
    _save(dict(meta=dict(meta or {}), state_dict=sd), dst)
    return len(sd)


def export_mmdet(src: str, dst: str, prefix: str = 'backbone.', layout: str = 'c4') -> int:
    """Save the mmdet detector weights (``load_from``) of an mmmsf checkpoint; returns #tensors."""
    sd = to_mmdet(load_state_dict(src), prefix, layout)
    _save(dict(meta=dict(converted_from=osp.abspath(src), layout=layout), state_dict=sd), dst)
    return len(sd)
