"""Key mapping between the authors' released MSF/CMSF checkpoints and mmmsf's MSF model.

The authors' ``train_msf.py`` saves ``{'opt', 'state_dict', 'optimizer', 'epoch'}`` where the
state dict of ``MeanShift`` (encoders wrapped in ``nn.DataParallel``) holds:

======================================  =================================================
authors                                  mmmsf
======================================  =================================================
``encoder_q.module.<resnet>``            ``backbone.<resnet>`` (torchvision names)
``encoder_q.module.fc.{0,1,3}.*``        ``neck.mlp.{0,1,3}.*`` (projection MLP)
``encoder_t.module.<resnet>``            ``target_backbone.<resnet>``
``encoder_t.module.fc.{0,1,3}.*``        ``target_neck.mlp.{0,1,3}.*``
``predict_q.module.{0,1,3}.*``           ``predictor.mlp.{0,1,3}.*``
``queue`` (K, D)                         ``memory_bank.bank``
``labels`` (K,)                          ``memory_bank.labels``
``queue_ptr`` (1,)                       ``memory_bank.ptr`` (a 0-d tensor)
``index_queue`` (K,) (CMSF-2Q)           ``memory_bank.sample_idx``
======================================  =================================================

mmmsf's bank also keeps ``memory_bank.num_written`` (how many embeddings were ever written; the
authors do not track it) and ``memory_bank.sample_idx`` (``-1`` = unknown where the authors'
file has no ``index_queue``). The optimiser's SGD state is indexed by the authors' trainable
parameters in order: ``encoder_q`` then ``predict_q`` (``encoder_t`` is frozen).
"""
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch

BUFFER_SUFFIXES = ('running_mean', 'running_var', 'num_batches_tracked')

# (authors' pattern, mmmsf replacement), tried in order
_RULES: List[Tuple[str, str]] = [
    (r'^encoder_q\.(?:module\.)?fc\.(\d+)\.(.+)$', r'neck.mlp.\1.\2'),
    (r'^encoder_q\.(?:module\.)?(.+)$', r'backbone.\1'),
    (r'^encoder_t\.(?:module\.)?fc\.(\d+)\.(.+)$', r'target_neck.mlp.\1.\2'),
    (r'^encoder_t\.(?:module\.)?(.+)$', r'target_backbone.\1'),
    (r'^predict_q\.(?:module\.)?(\d+)\.(.+)$', r'predictor.mlp.\1.\2'),
    (r'^queue$', 'memory_bank.bank'),
    (r'^labels$', 'memory_bank.labels'),
    (r'^queue_ptr$', 'memory_bank.ptr'),
    (r'^index_queue$', 'memory_bank.sample_idx'),
]
_REVERSE: List[Tuple[str, str]] = [
    (r'^neck\.mlp\.(\d+)\.(.+)$', r'encoder_q.module.fc.\1.\2'),
    (r'^backbone\.(.+)$', r'encoder_q.module.\1'),
    (r'^target_neck\.mlp\.(\d+)\.(.+)$', r'encoder_t.module.fc.\1.\2'),
    (r'^target_backbone\.(.+)$', r'encoder_t.module.\1'),
    (r'^predictor\.mlp\.(\d+)\.(.+)$', r'predict_q.module.\1.\2'),
    (r'^memory_bank\.bank$', 'queue'),
    (r'^memory_bank\.labels$', 'labels'),
    (r'^memory_bank\.ptr$', 'queue_ptr'),
    (r'^memory_bank\.sample_idx$', 'index_queue'),
]


def is_authors_state(state: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith('encoder_q.') for k in state)


def authors_trainable_names(state: Mapping[str, torch.Tensor]) -> List[str]:
    """The authors' optimiser parameter order: encoder_q's then predict_q's parameters."""
    def params(prefix):
        return [k for k in state if k.startswith(prefix) and not k.endswith(BUFFER_SUFFIXES)]
    return params('encoder_q.') + params('predict_q.')


def _map(key: str, rules) -> Optional[str]:
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def authors_to_mmmsf_state(state: Mapping[str, torch.Tensor], epoch: Optional[int] = None,
                           extra_map: Optional[Dict[str, str]] = None,
                           drop: Iterable[str] = ()) -> 'OrderedDict[str, torch.Tensor]':
    """mmmsf state dict of an authors' ``state_dict``.

    Args:
        epoch: completed epochs of the checkpoint; from epoch 1 on the bank counts as full
            (``num_written = K``), before it ``num_written = queue_ptr``.
        extra_map: ``{authors key: mmmsf key}`` for keys beyond the table above (e.g. the
            CMSF-2Q ``pool``); ``drop``: authors keys to leave out on purpose. Any other
            unknown key is an error -- nothing is dropped silently.
    """
    extra_map, drop = dict(extra_map or {}), set(drop)
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unknown = []
    for k, v in state.items():
        if k in drop:
            continue
        new = extra_map.get(k) or _map(k, _RULES)
        if new is None:
            unknown.append(k)
            continue
        out[new] = v.clone()
    if unknown:
        raise KeyError(f'{len(unknown)} key(s) of the authors\' checkpoint have no mmmsf '
                       f'counterpart: {unknown[:6]}. Map them with --map SRC=DST (e.g. to a '
                       'CMSF buffer) or leave them out with --drop KEY.')
    if 'backbone.conv1.weight' not in out:
        raise KeyError("no encoder_q.module.* weights: this is not an authors' MSF/CMSF "
                       'checkpoint.')
    if 'memory_bank.bank' in out:
        bank = out['memory_bank.bank']
        size = bank.shape[0]
        ptr = out.get('memory_bank.ptr', torch.zeros(1, dtype=torch.long))
        out['memory_bank.ptr'] = ptr.reshape(()).long()
        out.setdefault('memory_bank.labels', torch.full((size, ), -1, dtype=torch.long))
        out.setdefault('memory_bank.sample_idx', torch.full((size, ), -1, dtype=torch.long))
        written = size if (epoch or 0) >= 1 else int(out['memory_bank.ptr'])
        out['memory_bank.num_written'] = torch.tensor(written, dtype=torch.long)
    return out


def mmmsf_to_authors_state(state: Mapping[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """The inverse mapping. ``num_written`` has no authors' counterpart and is left out, as is
    a ``sample_idx`` that holds no index (all ``-1``: the authors' MSF has no ``index_queue``)."""
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unknown = []
    for k, v in state.items():
        if k == 'memory_bank.num_written' or (k == 'memory_bank.sample_idx'
                                              and bool((v == -1).all())):
            continue
        new = _map(k, _REVERSE)
        if new is None:
            unknown.append(k)
            continue
        out[new] = v.reshape(1).clone() if new == 'queue_ptr' else v.clone()
    if unknown:
        raise KeyError(f'mmmsf keys without an authors\' counterpart: {unknown[:6]}.')
    return out
