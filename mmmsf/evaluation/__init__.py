from .accuracy import TopKAccuracy, mean_per_class_accuracy, topk_accuracy
from .feature_extraction import extract_features
from .knn import knn_classify, knn_evaluate, vote
from .knn_accuracy import KNNAccuracy

__all__ = ['TopKAccuracy', 'mean_per_class_accuracy', 'topk_accuracy', 'extract_features',
           'knn_classify', 'knn_evaluate', 'vote', 'KNNAccuracy']
