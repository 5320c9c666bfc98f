from .batch_views_data_preprocessor import BatchViewsDataPreprocessor
from .multi_view_data_preprocessor import MultiViewDataPreprocessor

__all__ = ['BatchViewsDataPreprocessor', 'MultiViewDataPreprocessor']
