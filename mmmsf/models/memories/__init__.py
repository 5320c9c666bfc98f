from .embedding_cache import EmbeddingCache
from .nn_memory_bank import NNMemoryBank
from .sharded_state import ShardedState

__all__ = ['EmbeddingCache', 'NNMemoryBank', 'ShardedState']
