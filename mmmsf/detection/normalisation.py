"""The detector must normalise images exactly as the backbone saw them during pre-training.

mmdet's VOC bases use caffe-style BGR inputs (mean [103.53, 116.28, 123.675], std 1); mmmsf
pre-trains on RGB with torchvision's mean/std. A mismatch does not crash -- it silently costs
accuracy (mmselfsup's VOC config shipped it). So the detection configs put
``DetDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
bgr_to_rgb=True)`` *inside* ``model``, and :func:`check_normalisation` compares it with the
``data_preprocessor`` of the pre-training config that mmengine stores in every checkpoint
(``meta['cfg']``). The stored config text is parsed with ``ast`` (never executed).
"""
import ast
import inspect
from typing import Optional

import numpy as np
from mmengine.config import Config

from mmmsf.registry import MODELS

KEYS = ('mean', 'std', 'bgr_to_rgb')


def _fields(node: ast.AST) -> dict:
    """name -> value node of a ``dict(...)`` call or a ``{...}`` literal (else empty)."""
    if isinstance(node, ast.Call):
        return {kw.arg: kw.value for kw in node.keywords if kw.arg}
    if isinstance(node, ast.Dict):
        return {k.value: v for k, v in zip(node.keys, node.values)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return {}


def pretraining_normalisation(cfg_text: str) -> Optional[dict]:
    """``{mean, std, bgr_to_rgb}`` of ``model.data_preprocessor`` in a config text, or None."""
    try:
        tree = ast.parse(cfg_text)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'model' for t in node.targets):
            pre = _fields(_fields(node.value).get('data_preprocessor'))
            found = {}
            for key, value in pre.items():
                if key in KEYS + ('type', ):
                    try:
                        found[key] = ast.literal_eval(value)
                    except ValueError:
                        return None
            return _with_defaults(found) if pre else None
    return None


def _with_defaults(found: dict) -> Optional[dict]:
    """Fill what the config left to the pre-processor's defaults (mmmsf's only)."""
    if all(k in found for k in KEYS):
        return {k: found[k] for k in KEYS}
    cls = MODELS.get(str(found.get('type', '')).replace('mmmsf.', ''))
    if cls is None:
        return None
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    out = {k: found.get(k, defaults.get(k)) for k in KEYS}
    return None if any(v is None for v in out.values()) else out


def detector_normalisation(cfg: Config) -> dict:
    pre = cfg.model.get('data_preprocessor')
    if pre is None:
        raise KeyError('the detection config has no model.data_preprocessor: put '
                       "DetDataPreprocessor(mean, std, bgr_to_rgb) inside model.")
    return dict(mean=list(pre.get('mean', [0, 0, 0])), std=list(pre.get('std', [1, 1, 1])),
                bgr_to_rgb=bool(pre.get('bgr_to_rgb', False)))


def check_normalisation(cfg: Config, meta: dict, source: str = 'checkpoint') -> Optional[dict]:
    """Raise ``ValueError`` if the detector's normalisation differs from the pre-training one
    recorded in ``meta``; return the pre-training normalisation (None if not recorded)."""
    pre = pretraining_normalisation(meta['cfg']) if isinstance(meta.get('cfg'), str) else None
    if pre is None:
        return None
    det = detector_normalisation(cfg)
    same = (np.allclose(det['mean'], pre['mean']) and np.allclose(det['std'], pre['std'])
            and det['bgr_to_rgb'] == bool(pre['bgr_to_rgb']))
    if not same:
        raise ValueError(
            f'the detector normalises with mean={det["mean"]}, std={det["std"]}, '
            f'bgr_to_rgb={det["bgr_to_rgb"]} but {source} was pre-trained with '
            f'mean={list(pre["mean"])}, std={list(pre["std"])}, '
            f'bgr_to_rgb={pre["bgr_to_rgb"]}: set model.data_preprocessor to the latter '
            '(--cfg-options model.data_preprocessor.mean=[...] ...).')
    return pre
