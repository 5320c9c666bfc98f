from .constrained_rank_hook import ConstrainedRankHook
from .embedding_cache_hook import EmbeddingCacheHook
from .eval_results_hook import EvalResultsHook
from .feature_statistics_hook import FeatureStatisticsHook
from .kmeans_cluster_hook import KMeansClusterHook
from .momentum_update_hook import MomentumUpdateHook
from .neighbour_snapshot_hook import NeighbourSnapshotHook
from .nn_memory_bank_hook import NNMemoryBankHook
from .pseudo_label_hook import PseudoLabelHook
from .random_state_hook import RandomStateHook

__all__ = ['ConstrainedRankHook', 'EvalResultsHook', 'FeatureStatisticsHook', 'MomentumUpdateHook',
           'NeighbourSnapshotHook', 'NNMemoryBankHook', 'RandomStateHook',
           'EmbeddingCacheHook', 'KMeansClusterHook', 'PseudoLabelHook']
