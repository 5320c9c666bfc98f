from .embedding_cache import EmbeddingCache
from .nn_memory_bank import NNMemoryBank, chunked_topk, concat_all_gather

__all__ = ['EmbeddingCache', 'NNMemoryBank', 'chunked_topk', 'concat_all_gather']
