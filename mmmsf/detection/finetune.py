"""Fine-tuning and testing Faster R-CNN on VOC with mmdet's models, datasets and mmengine's Runner.

:func:`train_detector` is ``tools/train_detection.py``; :func:`test_detector` is
``tools/test_detection.py``: AP50, AP (COCO-style, mean over IoU .50:.05:.95) and AP75 on VOC
test07, all three from one mmdet ``VOCMetric(iou_thrs=[.5, .55, ..., .95])``: its per-threshold
``APxx`` and their mean ``mAP`` are what detectron2's VOC evaluator (MoCo's protocol, paper
Table 5) reports as AP50, AP75 and AP.
"""
import os.path as osp
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmmsf.apis.train import init_cpu_distributed, prepare_train_cfg, train
from mmmsf.utils.checkpoint import latest_checkpoint, state_mismatch
from mmmsf.utils.misc import get_ori_model
from .config import pretrained_checkpoints, set_pretrained
from .normalisation import check_normalisation
from .pretrained_resnet_init import load_resnet_weights, read_checkpoint
from .voc_layout import check_voc_layout

COCO_IOU_THRS = [round(0.5 + 0.05 * i, 2) for i in range(10)]


def _unique_run_names(cfg: Config, suffix: str) -> None:
    """Several Runners in one process (``--repeat``, tests) must not share a logger or
    visualizer instance: name both after the run, not mmdet's fixed 'visualizer'."""
    stem = osp.splitext(osp.basename(cfg.filename or 'detection'))[0]
    cfg.experiment_name = f'{stem}_{suffix}'
    if cfg.get('visualizer') is not None:
        cfg.visualizer.pop('name', None)


def train_detector(cfg: Config, work_dir: Optional[str] = None, pretrained: Optional[str] = None,
                   scratch: bool = False, seed: Optional[int] = None, launcher: str = 'none',
                   resume: Optional[str] = None, amp: bool = False) -> Runner:
    """Fine-tune the detector of ``cfg`` from ``pretrained`` (or from scratch) and return the
    Runner. Bad inputs (no/unknown/mismatched checkpoint, other normalisation than the
    pre-training's, incomplete VOC folders) stop here, before any training."""
    # A resumed run takes every weight from its checkpoint.
    set_pretrained(cfg, pretrained, scratch=scratch or (resume is not None and not pretrained))
    for ckpt in sorted({c for c in pretrained_checkpoints(cfg).values() if c}):
        _, layout, meta = load_resnet_weights(ckpt)
        pre = check_normalisation(cfg, meta, ckpt)
        print_log(f'pre-trained {layout} {ckpt}: ' + (
            f'normalisation {pre} matches the detector\'s' if pre else
            'no pre-training config recorded; model.data_preprocessor must match its '
            'normalisation'), logger='current')
    check_voc_layout(cfg, ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg')
                                                  else []))
    if launcher != 'none' and not torch.cuda.is_available() and 'SyncBN' in str(cfg.model):
        raise ValueError('SyncBN runs on GPUs only: for multi-process CPU runs set every '
                         "norm_cfg to dict(type='BN') (a single process reverts SyncBN itself).")
    cfg = prepare_train_cfg(cfg, work_dir, resume, amp, launcher)
    if seed is not None:
        cfg.randomness = dict(seed=seed, deterministic=False)
    _unique_run_names(cfg, f'seed{cfg.get("randomness", {}).get("seed")}')
    return train(cfg)


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint mmengine's CheckpointHook saved last in ``work_dir``."""
    path = latest_checkpoint(work_dir)
    if path is None:
        raise FileNotFoundError(f'{work_dir} has no last_checkpoint naming an existing file: '
                                'the run saved no checkpoint (check '
                                'default_hooks.checkpoint.interval).')
    return path


def check_ap_evaluator(cfg: Config) -> None:
    """The test evaluator must be mmdet's VOCMetric (mAP) over IoU .50:.05:.95."""
    ev = cfg.get('test_evaluator')
    ev = ev[0] if isinstance(ev, (list, tuple)) and len(ev) == 1 else ev
    ok = isinstance(ev, dict) and ev.get('type') in ('VOCMetric', 'mmdet.VOCMetric')
    if ok:
        thrs = ev.get('iou_thrs', 0.5)
        thrs = sorted(thrs) if isinstance(thrs, (list, tuple)) else [thrs]
        ok = (ev.get('metric', 'mAP') in ('mAP', ['mAP']) and len(thrs) == len(COCO_IOU_THRS)
              and np.allclose(thrs, COCO_IOU_THRS))
    if not ok:
        raise ValueError('test_evaluator must be dict(type=\'VOCMetric\', metric=\'mAP\', '
                         f'iou_thrs={COCO_IOU_THRS}) to report AP50, AP and AP75; got {ev}.')


def voc_ap(metrics: Dict[str, float]) -> Dict[str, float]:
    """AP50 / AP / AP75 in percent from VOCMetric's ``<prefix>/AP50``, ``/mAP``, ``/AP75``."""
    def pick(name):
        keys = [k for k in metrics if k.split('/')[-1] == name]
        if len(keys) != 1:
            raise KeyError(f'the evaluator returned {sorted(metrics)}, not one {name!r}.')
        return 100.0 * float(metrics[keys[0]])
    return dict(AP50=pick('AP50'), AP=pick('mAP'), AP75=pick('AP75'))


def _check_detector_checkpoint(model: torch.nn.Module, state: Dict[str, torch.Tensor],
                               path: str) -> None:
    wrong, missing, unexpected = state_mismatch(
        {k: tuple(v.shape) for k, v in model.state_dict().items()}, state)
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    if missing or wrong or unexpected:
        raise KeyError(f'{path} is not a detector of this config: {len(missing)} missing '
                       f'(e.g. {missing[:3]}), {len(wrong)} of another shape (e.g. {wrong[:2]}), '
                       f'{len(unexpected)} unexpected (e.g. {unexpected[:3]}). Give the '
                       'checkpoint written by tools/train_detection.py with this config.')


def test_detector(cfg: Config, checkpoint: Optional[str] = None,
                  work_dir: Optional[str] = None, launcher: str = 'none') -> Dict[str, float]:
    """AP50, AP, AP75 (percent) of the detector in ``checkpoint`` on the config's test split
    (VOC test07); ``checkpoint=None`` tests the freshly initialised (untrained) detector."""
    check_ap_evaluator(cfg)
    set_pretrained(cfg, scratch=True)   # weights come from the detector checkpoint
    check_voc_layout(cfg, ['test_dataloader'])
    cfg.launcher = launcher
    cfg.load_from, cfg.resume = None, False
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = cfg.param_scheduler = None
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(cfg.filename))[0])
    if launcher != 'none' and not torch.cuda.is_available():
        cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    _unique_run_names(cfg, 'test')
    init_cpu_distributed(launcher)
    runner = Runner.from_cfg(cfg)
    model = get_ori_model(runner.model)
    if checkpoint:
        state, _ = read_checkpoint(checkpoint)
        _check_detector_checkpoint(model, state, checkpoint)
        model.load_state_dict(state, strict=False)
    else:
        model.init_weights()
    metrics = runner.test()
    return voc_ap(metrics)
