from .nn_memory_bank import NNMemoryBank, chunked_topk, concat_all_gather

__all__ = ['NNMemoryBank', 'chunked_topk', 'concat_all_gather']
