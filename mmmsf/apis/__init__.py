from .config import check_config_keys, iter_hooks, load_config, set_data_root
from .demo import format_demo, run_demo
from .evaluate import build_model, knn_from_config
from .train import prepare_train_cfg, train

__all__ = ['format_demo', 'run_demo', 'build_model', 'knn_from_config', 'check_config_keys',
           'iter_hooks', 'load_config', 'set_data_root', 'prepare_train_cfg', 'train']
