"""kNN-validation settings that cannot work are refused when the Runner starts training (before
step 1), in one message that names the settings."""
import os

import pytest
from mmengine.runner import Runner

from tests.test_evaluation.test_online_knn import run_cfg


def _train_fails(cfg) -> str:
    with pytest.raises(ValueError) as e:
        Runner.from_cfg(cfg).train()
    assert not [f for f in os.listdir(cfg.work_dir) if f.endswith('.pth')]  # no step trained
    return str(e.value)


def test_memory_subset_smaller_than_k_is_refused_before_step_1(tmp_path):
    cfg = run_cfg(tmp_path, tmp_path / 'w', **{
        'val_cfg': dict(type='KNNValLoop', memory_subset=dict(per_class=1, seed=0)),
        'val_evaluator.ks': (1, 20)})
    msg = _train_fails(cfg)
    assert "val_evaluator.ks=(1, 20) votes among up to 20 neighbours, but the memory set " \
           "(knn_train_dataloader) has 10 images after val_cfg.memory_subset=" in msg
    assert 'per_class' in msg and 'enlarge val_cfg.memory_subset' in msg
    assert '--no-validate' in msg and '\n' not in msg


def test_k_beyond_the_memory_set_and_bad_ks_are_refused(tmp_path):
    msg = _train_fails(run_cfg(tmp_path, tmp_path / 'a', **{'val_evaluator.ks': (1, 200)}))
    assert 'val_evaluator.ks=(1, 200)' in msg and 'has 100 images.' in msg
    msg = _train_fails(run_cfg(tmp_path, tmp_path / 'b', **{'val_evaluator.ks': (0, 5)}))
    assert 'val_evaluator.ks=(0, 5) must be whole numbers >= 1' in msg
