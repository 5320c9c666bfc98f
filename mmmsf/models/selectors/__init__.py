from .base_selector import BaseSelector, SelectorOutput
from .constrained_selector import ConstrainedSelector
from .kmeans_selector import KMeansSelector
from .pseudo_label_selector import PseudoLabelSelector
from .supervised_selector import SupervisedSelector
from .topk_selector import TopKSelector
from .two_queue_selector import TwoQueueSelector

__all__ = ['BaseSelector', 'SelectorOutput', 'TopKSelector', 'ConstrainedSelector',
           'KMeansSelector', 'PseudoLabelSelector', 'SupervisedSelector', 'TwoQueueSelector']
