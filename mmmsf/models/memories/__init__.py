from .embedding_cache import EmbeddingCache
from .nn_memory_bank import NNMemoryBank

__all__ = ['EmbeddingCache', 'NNMemoryBank']
