"""Allocates CMSF's per-image embedding cache for the training set and reports its size."""
from mmengine.hooks import Hook

from mmmsf.registry import HOOKS
from mmmsf.utils.misc import get_ori_model


@HOOKS.register_module()
class EmbeddingCacheHook(Hook):
    """Before the run (so a resumed checkpoint loads into it): allocate the model's
    :class:`~mmmsf.models.memories.EmbeddingCache` with one row per training image, and log its
    shape, bytes and placement (CPU pinned memory when it is larger than the bank and the model
    is on a GPU, unless the config says otherwise). Every epoch end, the share of images that
    have a cached embedding is logged (``train/cache_coverage``).
    """

    priority = 'ABOVE_NORMAL'

    @staticmethod
    def cache(runner):
        cache = getattr(get_ori_model(runner.model), 'embedding_cache', None)
        if cache is None:
            raise ValueError('EmbeddingCacheHook needs a model with an embedding cache: set '
                             "model.embedding_cache=dict(type='EmbeddingCache') (CMSF).")
        return cache

    def before_run(self, runner) -> None:
        cache = self.cache(runner)
        cache.allocate(len(runner.train_dataloader.dataset))
        runner.logger.info(cache.describe())

    def after_train_epoch(self, runner) -> None:
        cache = self.cache(runner)
        runner.message_hub.update_scalar('train/cache_coverage',
                                         cache.coverage())
