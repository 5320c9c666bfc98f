# Runtime of linear evaluation runs (tools/linear_eval.py).
default_scope = 'mmmsf'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [
    dict(type='FeatureStatisticsHook'),  # standardisation statistics, once (cached)
    dict(type='EvalResultsHook', kind='linear'),  # <work_dir>/eval/linear.json
]
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # gloo where CUDA is absent (tools switch it)
)
log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
