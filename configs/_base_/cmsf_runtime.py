# CMSF's runtime: MSF's (default_runtime.py) plus the histogram of constrained-neighbour ranks
# (CMSF paper, "Histogram of constrained samples") and CMSF's neighbour statistics (purity,
# constrained fraction, ranks, pseudo-labels) averaged over each logging interval.
_base_ = './default_runtime.py'
default_hooks = dict(ranks=dict(type='ConstrainedRankHook', interval=10))
log_processor = dict(window_size=50,
                     mean_pattern=r'.*(loss|time|grad_norm|purity|frac|rank|pseudo_label).*')
