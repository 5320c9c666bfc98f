"""The paper's figures from a training run's work_dir (tools/analysis/ are thin command lines)."""
from .constrained_ranks import load_rank_counts, plot_constrained_ranks, rank_histogram
from .neighbour_grid import plot_neighbours
from .purity_curve import plot_purity
from .scalars import load_train_scalars, load_val_scalars, scalar_per_epoch
from .snapshots import load_snapshots
from .training_curves import draw_training_curves, plot_training_curves, run_curves
from .tsne import plot_tsne, plot_tsne_panels

__all__ = ['load_rank_counts', 'plot_constrained_ranks', 'rank_histogram', 'plot_neighbours',
           'plot_purity', 'load_train_scalars', 'load_val_scalars', 'scalar_per_epoch',
           'load_snapshots', 'draw_training_curves', 'plot_training_curves', 'run_curves',
           'plot_tsne', 'plot_tsne_panels']
