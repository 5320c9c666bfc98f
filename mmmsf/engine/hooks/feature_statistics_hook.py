"""Computes the linear probe's standardisation statistics once, before its training starts.

Reference (CompRess ``eval_linear.py``): the per-dimension mean and unbiased variance of the
L2-normalised backbone features of the whole *training* set seen through the *validation*
transform (Resize 256 / CenterCrop 224), cached in the output folder and reused.
"""
import copy
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.dist import all_reduce, barrier, get_rank, get_world_size
from mmengine.hooks import Hook

from mmmsf.evaluation.feature_extraction import dataset_fingerprint, module_fingerprint
from mmmsf.models.necks.feature_standardizer import feature_statistics
from mmmsf.registry import HOOKS
from mmmsf.utils.misc import get_ori_model


@HOOKS.register_module()
class FeatureStatisticsHook(Hook):
    """Fill :class:`~mmmsf.models.necks.FeatureStandardizer`'s statistics before training.

    Order: statistics already in the model (a resumed run) > the cache file when its
    fingerprint (backbone weights + image list) matches > computed now over ``dataloader``
    (each rank sums its shard; the sums are all-reduced) and written to the cache.

    Args:
        dataloader: the training set with the validation pipeline (default:
            ``linear_cfg.stats_dataloader`` of the config).
        cache_file: default ``<work_dir>/feature_stats.pth``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, dataloader: Optional[dict] = None, cache_file: Optional[str] = None):
        self.dataloader, self.cache_file = dataloader, cache_file

    def before_train(self, runner) -> None:
        model = get_ori_model(runner.model)
        std = model.standardizer
        if std.ready:
            runner.logger.info(f'feature statistics: from the checkpoint ({int(std.num_samples)} '
                               'images)')
            return
        loader_cfg = self.dataloader or runner.cfg.get('linear_cfg', {}).get('stats_dataloader')
        if loader_cfg is None:
            raise KeyError('FeatureStatisticsHook needs a dataloader over the training set with '
                           'the validation pipeline: set linear_cfg.stats_dataloader.')
        loader_cfg = copy.deepcopy(loader_cfg)
        sampler = loader_cfg.setdefault('sampler', dict(type='DefaultSampler', shuffle=False))
        if sampler.get('type', 'DefaultSampler') in ('DefaultSampler', 'mmengine.DefaultSampler'):
            sampler.update(shuffle=False, round_up=False)  # each image exactly once
        loader = runner.build_dataloader(loader_cfg, seed=runner.seed)
        cache = self.cache_file or osp.join(runner.work_dir, 'feature_stats.pth')
        weights = module_fingerprint(model.backbone) if model.backbone is not None else 'features'
        fingerprint = f'{weights}|{dataset_fingerprint(loader.dataset)}'
        if osp.isfile(cache):
            saved = torch.load(cache, map_location='cpu', weights_only=True)
            if saved.get('fingerprint') == fingerprint:
                std.set_statistics(saved['mean'], saved['var'], int(saved['num_samples']))
                runner.logger.info(f'feature statistics: from {cache}')
                return
            runner.logger.info(f'{cache} belongs to other weights or images: recomputing.')
        mean, var, n = self.compute(model, loader)
        std.set_statistics(mean.float(), var.float(), n)
        if get_rank() == 0:
            os.makedirs(osp.dirname(osp.abspath(cache)), exist_ok=True)
            torch.save(dict(mean=mean.float(), var=var.float(), num_samples=n,
                            fingerprint=fingerprint), cache)
        barrier()
        runner.logger.info(f'feature statistics: {n} training images, cached in {cache}')

    @staticmethod
    @torch.no_grad()
    def compute(model, loader):
        """Mean and unbiased variance (float64) of the L2-normalised features, over all ranks."""
        was_training = model.training
        model.eval()
        device = model.standardizer.mean.device
        sums = torch.zeros(model.feat_dim, dtype=torch.float64, device=device)
        sq = torch.zeros_like(sums)
        n = torch.zeros((), dtype=torch.float64, device=device)
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            f = model.standardizer.normalize(model.features(data['inputs']))
            f = f.double()
            sums += f.sum(0)
            sq += (f * f).sum(0)
            n += f.shape[0]
        model.train(was_training)
        if get_world_size() > 1:
            for t in (sums, sq, n):
                all_reduce(t, op='sum')
        mean, var = feature_statistics(sums.cpu(), sq.cpu(), int(n))
        return mean, var, int(n)
