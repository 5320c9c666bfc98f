"""Mistakes in configs, command lines and checkpoints fail before the first epoch, each with
one message that names the fix, and leave no checkpoint or result behind."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.runner import get_priority

from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.apis.config import check_nested_keys
from tests.conftest import MINI, ROOT

MSF_DEMO = osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py')
KM_DEMO = osp.join(ROOT, 'configs', 'demo', 'cmsf_km_r18_cifar10mini.py')


def _tiny(tmp_path, per_class=2, **extra):
    lines = [f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(osp.join(MINI, 'train')))
             for i in range(per_class)]
    (tmp_path / 'subset.txt').write_text('\n'.join(lines) + '\n')
    opts = {'model.backbone.base_channels': 8, 'model.neck.in_channels': 64,
            'model.neck.hid_channels': 32, 'model.neck.out_channels': 16,
            'model.predictor.in_channels': 16, 'model.predictor.hid_channels': 32,
            'model.predictor.out_channels': 16, 'model.memory_bank.size': 64,
            'model.memory_bank.dim': 16, 'train_dataloader.batch_size': 8,
            'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
            'train_dataloader.dataset.ann_file': str(tmp_path / 'subset.txt'),
            'train_cfg.max_epochs': 1}
    opts.update(extra)
    return opts


def _outputs(work_dir):
    return sorted(glob.glob(osp.join(str(work_dir), '**', '*.pth'), recursive=True)
                  + glob.glob(osp.join(str(work_dir), 'last_checkpoint')))


def test_every_config_passes_the_nested_check():
    paths = [p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
             if '_base_' not in p and 'detection' not in p]
    assert len(paths) > 20
    for p in paths:
        load_config(p)  # raises on any unknown nested key


@pytest.mark.parametrize('key, value, hint', [
    ('model.topkk', 5, 'model.topkk (did you mean model.topk?)'),
    ('default_hooks.checkpoint.intervall', 2,
     'default_hooks.checkpoint.intervall (did you mean default_hooks.checkpoint.interval?)'),
    ('model.memory_bank.szie', 64, 'model.memory_bank.szie (did you mean model.memory_bank.size?)'),
    ('train_dataloader.batchsize', 8,
     'train_dataloader.batchsize (did you mean train_dataloader.batch_size?)'),
    ('optim_wrapper.optimizer.lrr', 0.1, 'optim_wrapper.optimizer.lrr (did you mean '
     'optim_wrapper.optimizer.lr?)'),
])
def test_misspelt_nested_keys_say_did_you_mean(key, value, hint):
    with pytest.raises(KeyError) as e:
        load_config(MSF_DEMO, {key: value})
    assert hint in str(e.value)


def test_misspelt_key_in_a_custom_hook_and_pipeline():
    cfg = load_config(MSF_DEMO)
    cfg.default_hooks['bank']['intervl'] = 3
    cfg.train_pipeline[1]['transfroms'] = []
    cfg.train_dataloader.dataset.pipeline[1]['num_view'] = 2
    with pytest.raises(KeyError) as e:
        check_nested_keys(cfg)
    msg = str(e.value)
    assert 'default_hooks.bank.intervl (did you mean default_hooks.bank.interval?)' in msg
    assert 'train_dataloader.dataset.pipeline[1].num_view (did you mean ' \
           'train_dataloader.dataset.pipeline[1].num_views?)' in msg


def test_keys_that_mmengine_builders_take_are_accepted_and_act(tmp_path):
    """A hook's priority, a scheduler's convert_to_iter_based, the optimiser wrapper's
    paramwise_cfg and a loader's num_batch_per_epoch are mmengine's, not the classes': the check
    passes them, the Runner acts on them, and misspelling them is still an error."""
    opts = _tiny(tmp_path, **{
        'optim_wrapper.paramwise_cfg': dict(custom_keys={'predictor': dict(lr_mult=10.0)}),
        'train_dataloader.num_batch_per_epoch': 2, 'train_cfg.max_epochs': 2,
        'param_scheduler': [dict(type='LinearLR', start_factor=0.5, by_epoch=True, begin=0,
                                 end=2, convert_to_iter_based=True)],
        'custom_hooks': [dict(type='EmptyCacheHook', priority='VERY_LOW')]})
    cfg = prepare_train_cfg(load_config(MSF_DEMO, opts, data_root=MINI),
                            work_dir=str(tmp_path / 'w'))
    runner = train(cfg)
    assert runner.iter == 4                               # 2 epochs x num_batch_per_epoch
    groups = runner.optim_wrapper.optimizer.param_groups
    base_lr = cfg.optim_wrapper.optimizer.lr
    pred = {id(p) for p in runner.model.predictor.parameters()}
    lrs = {('predictor' if id(g['params'][0]) in pred else 'other'): g['initial_lr']
           for g in groups}
    assert lrs == {'predictor': pytest.approx(10 * base_lr), 'other': pytest.approx(base_lr)}
    hook = [h for h in runner.hooks if type(h).__name__ == 'EmptyCacheHook']
    assert len(hook) == 1 and get_priority(hook[0].priority) == get_priority('VERY_LOW')
    for key, value, hint in [
            ('optim_wrapper.paramwise_cgf', {}, 'did you mean optim_wrapper.paramwise_cfg?'),
            ('train_dataloader.num_batch_per_epoc', 2,
             'did you mean train_dataloader.num_batch_per_epoch?')]:
        with pytest.raises(KeyError, match=hint.replace('.', r'\.').replace('?', r'\?')):
            load_config(MSF_DEMO, {key: value})


def _tool(args, tmp_path, **env):
    e = dict(os.environ, PYTHONPATH=ROOT, **env)
    e.pop('MMMSF_ERROR_DIR', None)
    return subprocess.run([sys.executable, *args], cwd=str(tmp_path), env=e,
                          capture_output=True, text=True, timeout=300)


def test_cfg_option_without_value_is_one_line(tmp_path):
    p = _tool([osp.join(ROOT, 'tools', 'train.py'), MSF_DEMO, '--work-dir', str(tmp_path / 'w'),
               '--cfg-options', 'model.topk'], tmp_path)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "'model.topk' is not KEY=VALUE" in lines[0] and 'model.topk=5' in lines[0]
    assert not (tmp_path / 'w').exists()


def test_resume_with_nothing_to_resume_is_an_error(tmp_path):
    cfg = load_config(MSF_DEMO)
    with pytest.raises(FileNotFoundError, match='has no checkpoint to resume from'):
        prepare_train_cfg(cfg, work_dir=str(tmp_path / 'empty'), resume='auto')
    assert not (tmp_path / 'empty').exists()


def test_resume_if_any_says_it_starts_fresh(tmp_path, capsys):
    cfg = prepare_train_cfg(load_config(MSF_DEMO), work_dir=str(tmp_path / 'w'),
                            resume='if-any')
    assert cfg.resume is False and cfg.load_from is None
    out = capsys.readouterr().out
    assert 'no checkpoint' in out and 'starting fresh' in out


def test_resume_cli_with_nothing_to_resume(tmp_path):
    p = _tool([osp.join(ROOT, 'tools', 'train.py'), MSF_DEMO, '--work-dir', str(tmp_path / 'w'),
               '--resume'], tmp_path)
    assert p.returncode != 0
    assert 'has no checkpoint to resume from' in p.stderr
    assert _outputs(tmp_path) == []


def test_kmeans_with_more_clusters_than_images_fails_before_epoch_1(tmp_path):
    cfg = load_config(KM_DEMO, _tiny(tmp_path), data_root=MINI)  # 20 images, 100 clusters
    cfg = prepare_train_cfg(cfg, work_dir=str(tmp_path / 'w'))
    with pytest.raises(ValueError, match=r'num_clusters=100 is more than the 20 training '
                                         'images'):
        train(cfg)
    assert _outputs(tmp_path / 'w') == []
    scalars = glob.glob(str(tmp_path / 'w' / '*' / 'vis_data' / 'scalars.json'))
    assert all(os.path.getsize(s) == 0 for s in scalars)  # not one step was trained


@pytest.fixture
def one_epoch_checkpoint(tmp_path):
    cfg = prepare_train_cfg(load_config(MSF_DEMO, _tiny(tmp_path), data_root=MINI),
                            work_dir=str(tmp_path / 'src'))
    train(cfg)
    return str(tmp_path / 'src' / 'epoch_1.pth')


@pytest.mark.slow
def test_resume_from_a_checkpoint_of_another_width(tmp_path, one_epoch_checkpoint):
    opts = _tiny(tmp_path, **{'model.backbone.base_channels': 16, 'model.neck.in_channels': 128,
                              'train_cfg.max_epochs': 2})
    cfg = prepare_train_cfg(load_config(MSF_DEMO, opts, data_root=MINI),
                            work_dir=str(tmp_path / 'wide'), resume=one_epoch_checkpoint)
    with pytest.raises(ValueError) as e:
        train(cfg)
    msg = str(e.value)
    assert msg.count('\n') == 0
    assert one_epoch_checkpoint in msg and 'does not fit this model' in msg
    assert 'backbone.conv1.weight: checkpoint (8, 3, 3, 3) vs model (16, 3, 3, 3)' in msg
    assert _outputs(tmp_path / 'wide') == []


def test_truncated_checkpoint_names_the_file(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), str(good))
    bad = tmp_path / 'epoch_3.pth'
    bad.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    cfg = load_config(MSF_DEMO)
    with pytest.raises(ValueError) as e:
        prepare_train_cfg(cfg, work_dir=str(tmp_path / 'w'), resume=str(bad))
    assert str(bad) in str(e.value) and 'truncated' in str(e.value)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        prepare_train_cfg(load_config(MSF_DEMO), work_dir=str(tmp_path / 'w'),
                          resume=str(tmp_path / 'missing.pth'))
    assert not (tmp_path / 'w').exists()
