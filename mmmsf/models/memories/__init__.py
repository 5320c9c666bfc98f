from .embedding_cache import EmbeddingCache
from .neighbour_bank import NeighbourBank
from .nn_memory_bank import NNMemoryBank

__all__ = ['EmbeddingCache', 'NeighbourBank', 'NNMemoryBank']
