from .knn_val_loop import KNNValLoop
from .resumable_epoch_loop import ResumableEpochBasedTrainLoop

__all__ = ['KNNValLoop', 'ResumableEpochBasedTrainLoop']
