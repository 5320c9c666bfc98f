from .embedding_cache import EmbeddingCache
from .nn_memory_bank import NNMemoryBank, chunked_topk, concat_all_gather
from .slot_mask import SlotMask

__all__ = ['EmbeddingCache', 'NNMemoryBank', 'SlotMask', 'chunked_topk', 'concat_all_gather']
