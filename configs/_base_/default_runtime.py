# Runtime shared by every pre-training config.
default_scope = 'mmmsf'
# mmengine's Runner, plus: checkpoints hold a sharded memory bank (and CMSF's sharded state)
# whole, gathered on rank 0 before each save; each rank keeps its own rows through the weight
# initialisation's broadcast (mmmsf/engine/runner/sharded_state_runner.py).
runner_type = 'ShardedStateRunner'

# The method's hooks are keyed here too (mmengine's default_hooks takes any name), so a derived
# config adds or changes one hook by its key (e.g. ``default_hooks = dict(kmeans=dict(...))``)
# instead of restating a whole ``custom_hooks`` list. ``custom_hooks`` is left to the user.
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    ema=dict(type='MomentumUpdateHook', momentum=0.99),  # paper: constant 0.99 on the old weights
    bank=dict(type='NNMemoryBankHook', interval=50),
    rng=dict(type='RandomStateHook'),
)
custom_hooks = []
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/train.py switches to gloo where CUDA is absent
)
log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
# Scalars (loss, purity, bank statistics, lr) also go to <work_dir>/<timestamp>/vis_data/scalars.json,
# which tools/analysis reads to draw the paper's figures.
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
# TensorBoard as well: tools/train.py --tensorboard, or in a config
# visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
