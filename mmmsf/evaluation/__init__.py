from .knn import extract_features, knn_classify, knn_evaluate, vote

__all__ = ['extract_features', 'knn_classify', 'knn_evaluate', 'vote']
