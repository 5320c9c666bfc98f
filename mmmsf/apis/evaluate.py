"""Build a pre-trained model from a config + checkpoint; score it with kNN or embed a dataset."""
import copy
import os.path as osp
from typing import Dict, Optional, Tuple

import numpy as np

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmmsf.evaluation import knn_evaluate
from mmmsf.evaluation.feature_extraction import extract_features
from mmmsf.evaluation.results_io import checkpoint_results_path, write_results
from mmmsf.registry import MODELS
from mmmsf.utils.backbone_weights import load_backbone_weights


def build_model(cfg: Config, checkpoint: Optional[str] = None, seed: int = 0) -> torch.nn.Module:
    """The config's model, initialised (seeded), with the backbone of ``checkpoint`` if given.

    Evaluation embeds with the backbone only, so only the backbone is read (weights-only) and
    loaded -- strictly: a missing, extra or mis-shaped backbone weight (another depth or width)
    is one error naming it, never a silent random initialisation. The rest of the checkpoint
    (neck, predictor, memory bank) is not needed and may have any size.
    """
    init_default_scope(cfg.get('default_scope', 'mmmsf'))
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # no per-parameter initialisation report on the console
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    if checkpoint:
        load_backbone_weights(model.backbone, checkpoint)
    return model


def knn_from_config(cfg: Config, checkpoint: Optional[str] = None,
                    cache_dir: Optional[str] = None, weighted: Optional[bool] = None,
                    device: Optional[str] = None) -> Dict[str, float]:
    """kNN accuracy of ``checkpoint`` (or of the randomly initialised model when None)."""
    model = build_model(cfg, checkpoint)
    knn_cfg = dict(cfg.get('knn_cfg', {}))
    if weighted is not None:
        knn_cfg['weighted'] = weighted
    train_loader = Runner.build_dataloader(cfg.knn_train_dataloader)
    test_loader = Runner.build_dataloader(cfg.knn_test_dataloader)
    dev = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    return knn_evaluate(model, train_loader, test_loader, ks=knn_cfg.get('ks', (1, 20)),
                        weighted=knn_cfg.get('weighted', False), cache_dir=cache_dir, device=dev,
                        temperature=knn_cfg.get('temperature', 0.07))


def embeddings_from_checkpoint(cfg: Config, checkpoint: Optional[str],
                               dataloader_key: str = 'knn_test_dataloader'
                               ) -> Tuple[np.ndarray, np.ndarray]:
    """L2-normalised backbone features and labels of a config's dataset for one checkpoint
    (the random initialisation when ``checkpoint`` is None), e.g. for t-SNE."""
    if dataloader_key not in cfg:
        raise KeyError(f'the config has no {dataloader_key!r} to embed.')
    model = build_model(cfg, checkpoint)
    loader = Runner.build_dataloader(copy.deepcopy(cfg[dataloader_key]), seed=0)
    feats, labels = extract_features(model, loader, normalize=True)
    return feats.numpy(), labels.numpy()


def write_knn_results(results: Dict[str, float], checkpoint: Optional[str],
                      config: Optional[str] = None, weighted: bool = False,
                      out: Optional[str] = None) -> str:
    """Write kNN ``results`` (default ``<checkpoint folder>/eval/knn_<checkpoint>.json``), the
    file ``tools/analysis/results_table.py`` reads; returns its path."""
    return write_results(out or checkpoint_results_path(checkpoint, 'knn'), 'knn', results,
                         checkpoint=checkpoint,
                         config=osp.abspath(config) if config else None, weighted=weighted)
