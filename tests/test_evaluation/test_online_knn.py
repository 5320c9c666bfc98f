"""Online kNN validation during pre-training (KNNValLoop + KNNAccuracy) on the bundled images:
the same numbers as tools/knn_eval.py on the same checkpoint, 2 gloo ranks = 1 rank, history and
best epoch kept across a resume, class-balanced memory subset, and one clear error for a
missing / empty query folder or a query set whose classes differ from the memory set's."""
import json
import os
import os.path as osp
import runpy
import shutil
import sys

import faiss
import pytest
import torch
from mmengine.hooks import Hook

from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.evaluation.results_io import read_results
from mmmsf.registry import HOOKS
from mmmsf.visualization.scalars import load_val_scalars
from tests.conftest import MINI, ROOT
from tests.gloo import free_port, start_gloo

DEMO = osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py')
CLASSES = sorted(os.listdir(osp.join(MINI, 'train')))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_list(path, split: str, per_class: int, classes=CLASSES) -> str:
    lines = [f'{c}/{i:04d}.jpg' for c in classes for i in range(per_class)]
    assert all(osp.isfile(osp.join(MINI, split, ln)) for ln in lines)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return str(path)


def model_opts() -> dict:
    """A width-8 small-stem ResNet-18 MSF (the demo config, shrunk; k = 5 so purity is logged)."""
    return {'model.topk': 5, 'model.backbone.base_channels': 8, 'model.neck.in_channels': 64,
            'model.neck.hid_channels': 64, 'model.neck.out_channels': 32,
            'model.predictor.in_channels': 32, 'model.predictor.hid_channels': 64,
            'model.predictor.out_channels': 32, 'model.memory_bank.size': 128,
            'model.memory_bank.dim': 32}


def knn_opts(tmp_path) -> dict:
    """Memory set: 10 training images per class; query set: 6 test images per class."""
    mem = write_list(tmp_path / 'memory.txt', 'train', 10)
    qry = write_list(tmp_path / 'query.txt', 'test', 6)
    return {'knn_train_dataloader.dataset.ann_file': mem,
            'knn_test_dataloader.dataset.ann_file': qry,
            'val_dataloader.dataset.ann_file': qry,
            'knn_train_dataloader.batch_size': 32, 'knn_test_dataloader.batch_size': 16,
            'val_dataloader.batch_size': 16}


def run_cfg(tmp_path, work_dir, epochs=2, extra_hooks=(), **opts):
    options = dict(model_opts(), **knn_opts(tmp_path))
    options.update({
        'train_dataloader.batch_size': 16, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.ann_file': write_list(tmp_path / 'train.txt', 'train', 8),
        'train_cfg.max_epochs': epochs,
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=epochs, by_epoch=True,
                                 begin=0, end=epochs)],
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=1, max_keep_ckpts=10),
    })
    options.update(opts)
    cfg = load_config(DEMO, options, data_root=MINI)
    cfg.custom_hooks = list(cfg.custom_hooks) + list(extra_hooks)
    return prepare_train_cfg(cfg, work_dir=str(work_dir))


def offline_knn(tmp_path, ckpt, capsys, monkeypatch) -> dict:
    """What ``tools/knn_eval.py CONFIG CKPT`` prints for the same model and sets."""
    opts = [f'{k}={v}' for k, v in dict(model_opts(), **knn_opts(tmp_path)).items()
            if not k.startswith('val_')]
    monkeypatch.setattr(sys, 'argv', ['knn_eval.py', DEMO, ckpt, '--data-root', MINI,
                                      '--device', 'cpu', '--out', str(tmp_path / 'off.json'),
                                      '--cfg-options'] + opts)
    capsys.readouterr()
    runpy.run_path(osp.join(ROOT, 'tools/knn_eval.py'), run_name='__main__')
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith('written to ')  # then the JSON path
    return json.loads(next(line for line in out if line.startswith('{')))


@pytest.mark.slow
def test_online_knn_equals_knn_eval_tool_on_each_checkpoint(tmp_path, capsys, monkeypatch):
    work = tmp_path / 'run'
    train(run_cfg(tmp_path, work, epochs=2))
    val = load_val_scalars(str(work))
    assert [r['step'] for r in val] == [1, 2]  # every epoch (demo: val_interval=1)
    for rec in val:
        off = offline_knn(tmp_path, str(work / f'epoch_{rec["step"]}.pth'), capsys, monkeypatch)
        assert rec['knn/top1@1'] == off['1-NN'] and rec['knn/top1@20'] == off['20-NN'], (
            rec, off)
        assert 0 < rec['knn/seconds'] and 0 < rec['knn/epoch_share']
    res = read_results(str(work / 'eval' / 'knn.json'))  # the last epoch's, for results_table
    assert res['kind'] == 'knn' and res['epoch'] == 2 and res['online']
    assert res['results'] == {'1-NN': val[-1]['knn/top1@1'], '20-NN': val[-1]['knn/top1@20']}
    assert res['memory_images'] == 100 and res['query_images'] == 60
    assert [h['epoch'] for h in res['history']] == [1, 2]
    # kNN of a trained backbone beats chance (10 classes)
    assert max(r['knn/top1@20'] for r in val) > 10


@HOOKS.register_module(force=True)
class KillAtIterHook(Hook):
    """Test hook: 'kills' the run at a given iteration (after its checkpoint, if any)."""

    def __init__(self, kill_at: int = -1):
        self.kill_at = kill_at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == self.kill_at:
            raise KeyboardInterrupt('simulated kill')


@pytest.mark.slow
def test_resume_keeps_knn_history_and_best_epoch(tmp_path):
    full = tmp_path / 'full'
    train(run_cfg(tmp_path, full, epochs=3, **{'model.target_bn': 'none'}))
    ref = read_results(str(full / 'eval' / 'knn.json'))
    assert [h['epoch'] for h in ref['history']] == [1, 2, 3]

    cut = tmp_path / 'cut'  # killed in epoch 3 (iter 12 of 15), resumed from epoch_2.pth
    with pytest.raises(KeyboardInterrupt):
        kill = dict(type='KillAtIterHook', kill_at=12)
        train(run_cfg(tmp_path, cut, epochs=3, extra_hooks=[kill], **{'model.target_bn': 'none'}))
    assert [h['epoch'] for h in read_results(str(cut / 'eval' / 'knn.json'))['history']] == [1, 2]
    # epoch 2's checkpoint is written before epoch 2's validation: it holds epoch 1's
    ck = torch.load(str(cut / 'epoch_2.pth'), map_location='cpu', weights_only=True)
    assert [h['epoch'] for h in ck['message_hub']['runtime_info']['knn_history']] == [1]
    train(prepare_train_cfg(run_cfg(tmp_path, cut, epochs=3, **{'model.target_bn': 'none'}),
                            resume='auto'))
    res = read_results(str(cut / 'eval' / 'knn.json'))
    assert res['history'] == ref['history']  # bit-exact resume: the same kNN at every epoch
    for name in ('1-NN', '20-NN'):
        top = max(res['history'], key=lambda h: (h[name], -h['epoch']))
        assert res['best'][name] == dict(value=top[name], epoch=top['epoch'])
    # the curves see all three validations across the two runs (two timestamp folders)
    assert [r['step'] for r in load_val_scalars(str(cut))] == [1, 2, 3]
    # results_table: the last epoch's number, the best epoch beside it, labelled
    from mmmsf.evaluation.results_table import format_table, gather_run
    row = gather_run(str(cut))
    assert row['20-NN'] == res['results']['20-NN']
    table = format_table([row])
    b = res['best']['20-NN']
    assert f"{row['20-NN']:.1f} (best {b['value']:.1f} @ epoch {b['epoch']})" in table


def _ddp_worker(rank, world, port, cfg_dict, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)  # a forked rank: no OpenMP pool across the fork
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmmsf.apis.train import init_cpu_distributed
    from mmmsf.evaluation.results_io import read_results  # noqa: F401
    cfg = Config(cfg_dict)
    launcher = 'pytorch' if world > 1 else 'none'
    cfg = prepare_train_cfg(cfg, work_dir=osp.join(out_dir, f'w{world}'), launcher=launcher)
    init_cpu_distributed(launcher)
    runner = Runner.from_cfg(cfg)
    metrics = runner.val()
    with open(osp.join(out_dir, f'history{world}_rank{rank}.json'), 'w') as f:
        json.dump(runner.message_hub.get_info('knn_history'), f)
    if rank == 0:
        with open(osp.join(out_dir, f'metrics{world}.json'), 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f)


@pytest.mark.slow
def test_two_gloo_ranks_give_the_same_knn_as_one(tmp_path):
    """Each rank embeds its shard of both sets; the gathered result equals one process's."""
    work = tmp_path / 'run'
    train(run_cfg(tmp_path, work, epochs=1))
    # 100 memory / 60 query images with batches that do not divide them evenly per rank
    cfg = run_cfg(tmp_path, tmp_path / 'unused', load_from=str(work / 'epoch_1.pth'),
                  **{'knn_train_dataloader.batch_size': 7, 'val_dataloader.batch_size': 9})
    cfg_dict = cfg.to_dict()
    cfg_dict.pop('filename', None)
    for world in (1, 2):
        start_gloo(_ddp_worker, (world, free_port(), cfg_dict, str(tmp_path)), nprocs=world)
    one = json.load(open(tmp_path / 'metrics1.json'))
    two = json.load(open(tmp_path / 'metrics2.json'))
    assert one['knn/top1@1'] == two['knn/top1@1'] and one['knn/top1@20'] == two['knn/top1@20']
    # every rank keeps the history the main process writes
    written = read_results(str(tmp_path / 'w2' / 'eval' / 'knn.json'))['history']
    for rank in (0, 1):
        assert json.load(open(tmp_path / f'history2_rank{rank}.json')) == written
    assert written == [dict(epoch=0, **{'1-NN': two['knn/top1@1'], '20-NN': two['knn/top1@20']})]
    # and the numbers are those of the training run's own validation of that checkpoint
    online = load_val_scalars(str(work))[-1]
    assert online['knn/top1@1'] == one['knn/top1@1']
    assert online['knn/top1@20'] == one['knn/top1@20']


def test_class_balanced_memory_subset_and_feature_cache(tmp_path):
    from mmengine.runner import Runner
    cfg = run_cfg(tmp_path, tmp_path / 'run', **{
        'val_cfg': dict(type='KNNValLoop', memory_subset=dict(per_class=4, seed=1), cache=True),
        'knn_train_dataloader.dataset.ann_file': '',  # the whole training split, subsampled
        'val_evaluator.ks': (1, 5)})
    runner = Runner.from_cfg(cfg)
    m1 = runner.val()
    # the config names no results hook: the loop registered one, once
    assert [h.kind for h in runner.hooks if type(h).__name__ == 'EvalResultsHook'] == ['knn']
    res = read_results(str(tmp_path / 'run' / 'eval' / 'knn.json'))
    assert res['memory_images'] == 40 and set(res['results']) == {'1-NN', '5-NN'}
    labels = [runner.val_loop.memory_dataloader.dataset.get_data_info(i)['gt_label']
              for i in range(40)]
    assert sorted(labels) == sorted(list(range(10)) * 4)  # 4 images of each of the 10 classes
    cache = tmp_path / 'run' / 'knn_cache' / 'memory.npz'
    assert cache.is_file()
    feats = __import__('numpy').load(str(cache))['feats']
    assert feats.shape == (40, 64)
    m2 = runner.val()  # same weights: memory features from the cache, same numbers
    assert m1['knn/top1@1'] == m2['knn/top1@1'] and m1['knn/top1@5'] == m2['knn/top1@5']


def _expect_one_clear_error(cfg, match):
    from mmengine.runner import Runner
    with pytest.raises((FileNotFoundError, ValueError)) as info:
        Runner.from_cfg(cfg).train()
    msg = str(info.value)
    assert match in msg and '--no-validate' in msg, msg
    assert not [f for f in os.listdir(cfg.work_dir) if f.endswith('.pth')]  # nothing trained
    return msg


def test_missing_empty_or_mismatched_val_folder_is_one_clear_error(tmp_path):
    base = {'val_dataloader.dataset.ann_file': ''}  # the whole folder
    # missing folder
    msg = _expect_one_clear_error(run_cfg(tmp_path, tmp_path / 'a', **base, **{
        'val_dataloader.dataset.data_prefix': 'val'}), 'val_dataloader')
    assert 'does not exist' in msg and 'cifar10_mini/val' in msg
    # empty folder (class folders without images)
    empty = tmp_path / 'empty'
    for c in CLASSES:
        (empty / 'test' / c).mkdir(parents=True)
    msg = _expect_one_clear_error(run_cfg(tmp_path, tmp_path / 'b', **base, **{
        'val_dataloader.dataset.data_prefix': str(empty / 'test')}), 'val_dataloader')
    assert 'no images found' in msg
    # another set of classes: 3 of the 10 class folders
    other = tmp_path / 'other'
    for c in CLASSES[:3]:
        shutil.copytree(osp.join(MINI, 'test', c), other / 'test' / c)
    msg = _expect_one_clear_error(run_cfg(tmp_path, tmp_path / 'c', **base, **{
        'val_dataloader.dataset.data_prefix': str(other / 'test')}), 'different classes')
    assert 'only in the memory set' in msg and CLASSES[3] in msg
