from .accuracy import TopKAccuracy, mean_per_class_accuracy, topk_accuracy
from .bootstrap import paired_bootstrap
from .feature_extraction import extract_features
from .knn import knn_classify, knn_correct, knn_evaluate, knn_predict, vote
from .knn_accuracy import KNNAccuracy
from .raw_pixels import RawPixels, raw_pixel_features

__all__ = ['TopKAccuracy', 'mean_per_class_accuracy', 'topk_accuracy', 'extract_features',
           'knn_classify', 'knn_correct', 'knn_evaluate', 'knn_predict', 'vote',
           'paired_bootstrap', 'RawPixels', 'raw_pixel_features', 'KNNAccuracy']
