"""Small mistakes get one line naming the option, key or file: ``--cfg-options`` of the wrong
kind, typos in the runner's plain settings, non-boolean True/False arguments, a truncated
checkpoint, Slurm's launcher without Slurm."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.apis.evaluate import build_model
from tests.conftest import MINI, ROOT
from tests.test_apis.test_config_errors import _tiny

DEMO = osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py')


@pytest.mark.parametrize('value, kind', [('five', 'whole number'), ('[5', 'whole number'),
                                         (2.5, 'whole number')])
def test_cfg_options_of_another_kind_name_the_option(value, kind):
    with pytest.raises(ValueError) as e:
        load_config(DEMO, {'model.topk': value})
    msg = str(e.value)
    assert f'model.topk={value!r} (the config has 5: give a {kind})' in msg and '\n' not in msg


def test_cfg_options_of_the_same_kind_pass():
    cfg = load_config(DEMO, {'model.topk': 3, 'optim_wrapper.optimizer.lr': 1,
                             'val_evaluator.ks': [1, 5], 'val_cfg': None,
                             'model.memory_bank.sharded': True})
    assert cfg.model.topk == 3 and cfg.val_cfg is None and cfg.model.memory_bank.sharded


def test_cli_cfg_options_error_is_one_line_before_building(tmp_path):
    p = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), DEMO, '--work-dir',
                        str(tmp_path / 'w'), '--cfg-options', 'model.topk=five'],
                       capture_output=True, text=True, cwd=str(tmp_path), timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode != 0
    assert "model.topk='five' (the config has 5: give a whole number)" in \
        p.stderr.strip().splitlines()[-1]
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('value', ['no', 'False', 0])
def test_true_false_arguments_take_booleans_only(value):
    with pytest.raises(KeyError) as e:
        load_config(DEMO, {'model.memory_bank.sharded': value})
    assert f'model.memory_bank.sharded={value!r}: NNMemoryBank takes True or False' in \
        e.value.args[0]


@pytest.mark.parametrize('key, hint', [
    ('val_evaluator.kss', 'val_evaluator.kss (did you mean val_evaluator.ks?)'),
    ('log_processor.window_sise', 'log_processor.window_sise (did you mean '
                                  'log_processor.window_size?)'),
    ('randomness.sed', 'randomness.sed (did you mean randomness.seed?)'),
    ('visualizer.vis_backend', 'visualizer.vis_backend (did you mean visualizer.vis_backends?)'),
    ('env_cfg.cudnn_benchmrk', 'env_cfg.cudnn_benchmrk (did you mean env_cfg.cudnn_benchmark?)'),
    ('env_cfg.mp_cfg.opencv_num_thread', 'env_cfg.mp_cfg.opencv_num_thread (did you mean '
                                         'env_cfg.mp_cfg.opencv_num_threads?)'),
    ('knn_cfg.weigthed', 'knn_cfg.weigthed (did you mean knn_cfg.weighted?)'),
])
def test_typos_in_plain_settings_say_did_you_mean(key, hint):
    with pytest.raises(KeyError) as e:
        load_config(DEMO, {key: 1})
    assert hint in e.value.args[0] and '\n' not in e.value.args[0]


def _truncated(tmp_path) -> str:
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), str(good))
    bad = tmp_path / 'epoch_3.pth'
    bad.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    return str(bad)


def test_truncated_checkpoint_through_load_from_and_knn_names_the_file(tmp_path):
    bad = _truncated(tmp_path)
    cfg = prepare_train_cfg(load_config(DEMO, {**_tiny(tmp_path), 'load_from': bad},
                                        data_root=MINI), work_dir=str(tmp_path / 'w'))
    for load in (lambda: train(cfg), lambda: build_model(load_config(DEMO), bad)):
        with pytest.raises(ValueError) as e:
            load()
        msg = str(e.value)
        assert bad in msg and 'truncated (copy it again)' in msg and '\n' not in msg


def test_slurm_train_without_slurm_says_so(tmp_path):
    env = dict(os.environ, PATH='/usr/bin:/bin')
    if subprocess.run(['bash', '-c', 'command -v srun'], env=env).returncode == 0:
        pytest.skip('srun is installed here')
    r = subprocess.run(['bash', osp.join(ROOT, 'tools/slurm_train.sh'), 'part', 'job', DEMO, '2'],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 127
    assert r.stderr.count('\n') == 1 and 'srun not found' in r.stderr
    assert 'bash tools/dist_train.sh CONFIG NPROC' in r.stderr


def test_bank_size_advice_satisfies_the_batch_and_the_sharding():
    """The sharded bank's world-size advice used to lead into the batch error (2048 on 3
    processes: '2046'); the size given now is a multiple of both."""
    import re
    from mmmsf.apis.train import check_bank_and_batch
    cfg = load_config(DEMO, {'model.memory_bank.sharded': True})  # 2048 slots, 128 per process
    with pytest.raises(ValueError) as e:
        check_bank_and_batch(cfg, 3)
    msg = str(e.value)
    assert 'model.memory_bank.size=2048 must be a multiple of the global batch 384' in msg
    sizes = [int(n) for n in re.search(r'set it to (\d+) or (\d+)', msg).groups()]
    assert sizes == [1920, 2304] and all(s % 384 == 0 and s % 3 == 0 for s in sizes)
    check_bank_and_batch(load_config(DEMO, {'model.memory_bank.size': 2304,
                                            'model.memory_bank.sharded': True}), 3)


def test_bank_not_a_multiple_of_the_batch_is_refused_before_building(tmp_path):
    cfg = prepare_train_cfg(load_config(DEMO, {**_tiny(tmp_path), 'model.memory_bank.size': 60},
                                        data_root=MINI), work_dir=str(tmp_path / 'w'))
    with pytest.raises(ValueError, match=r'size=60 must be a multiple of the global batch 8 '
                                         r'\(8 per process x 1 processes.*set it to 56 or 64'):
        train(cfg)
    assert not (tmp_path / 'w').exists()
