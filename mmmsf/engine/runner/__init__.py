from .knn_val_loop import KNNValLoop
from .resumable_epoch_loop import ResumableEpochBasedTrainLoop
from .sharded_state_runner import ShardedStateRunner

__all__ = ['KNNValLoop', 'ResumableEpochBasedTrainLoop', 'ShardedStateRunner']
