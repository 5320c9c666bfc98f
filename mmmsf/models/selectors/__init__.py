from .base_selector import BaseSelector, SelectorOutput
from .topk_selector import TopKSelector

__all__ = ['BaseSelector', 'SelectorOutput', 'TopKSelector']
