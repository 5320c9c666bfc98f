"""The paper's figures from a short real training run (supervised CMSF on the bundled images):
each tool writes a non-empty PNG and returns exactly the values it plotted, which must equal
what the run logged / saved. Also the results table gathered from the same run."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from torch.utils.data import DataLoader, Subset

from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.datasets import ImageFolder
from mmmsf.engine.hooks import NeighbourSnapshotHook
from mmmsf.evaluation.results_io import read_results, results_path, write_results
from mmmsf.evaluation.results_table import format_table, gather_run
from mmmsf.registry import HOOKS
from mmmsf.visualization import (load_snapshots, plot_constrained_ranks, plot_neighbours,
                                 plot_purity, plot_tsne)
from tests.conftest import MINI, ROOT

CMSF_DEMO = osp.join(ROOT, 'configs/demo/cmsf_sup_r18_cifar10mini.py')
EPOCHS = 2


@HOOKS.register_module(force=True)
class RecordRanksHook(Hook):
    """Test hook: every rank tensor the model published, per epoch (runs before
    ConstrainedRankHook, which consumes them)."""
    priority = 'NORMAL'
    ranks = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        r = runner.message_hub.get_info('constrained_ranks')
        if r is not None:
            RecordRanksHook.ranks.setdefault(runner.epoch + 1, []).append(r.clone().flatten())


@HOOKS.register_module(force=True)
class KeepModelHook(Hook):
    model = None

    def after_train(self, runner):
        KeepModelHook.model = runner.model


def is_png(path):
    with open(path, 'rb') as f:
        return f.read(8) == b'\x89PNG\r\n\x1a\n' and osp.getsize(path) > 2000


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    from mmengine.registry import init_default_scope
    init_default_scope('mmmsf')
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('figs')
    ann = tmp / 'sub.txt'
    ann.write_text('\n'.join(f'{c}/{i:04d}.jpg' for c in sorted(
        __import__('os').listdir(osp.join(MINI, 'train'))) for i in range(8)) + '\n')
    opts = {
        'model.backbone.base_channels': 8, 'model.neck.in_channels': 64,
        'model.neck.hid_channels': 64, 'model.neck.out_channels': 32,
        'model.predictor.in_channels': 32, 'model.predictor.hid_channels': 64,
        'model.predictor.out_channels': 32, 'model.memory_bank.size': 64,
        'model.memory_bank.dim': 32,
        'train_dataloader.batch_size': 16, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.ann_file': str(ann),
        'train_dataloader.dataset.serialize_data': False,
        'knn_train_dataloader.dataset.ann_file': str(ann),
        'knn_train_dataloader.dataset.serialize_data': False,
        'val_dataloader.dataset.ann_file': str(ann),
        'train_cfg.max_epochs': EPOCHS,
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=EPOCHS, by_epoch=True,
                                 begin=0, end=EPOCHS)],
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=1000, save_last=False),
    }
    cfg = load_config(CMSF_DEMO, opts, data_root=MINI)
    cfg.default_hooks.pop('ranks')  # recorded every epoch below, after RecordRanksHook
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='RecordRanksHook'), dict(type='KeepModelHook'),
        dict(type='ConstrainedRankHook', interval=1),
        dict(type='NeighbourSnapshotHook', interval=1, pool_size=50, num_queries=3, k=4)]
    RecordRanksHook.ranks = {}
    cfg = prepare_train_cfg(cfg, work_dir=str(tmp / 'run'))
    train(cfg)
    torch.set_num_threads(n)
    return str(tmp / 'run'), cfg


def logged(work_dir, key):
    (path, ) = __import__('glob').glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    per_epoch = {}
    for line in open(path):
        rec = json.loads(line)
        if key in rec and 'loss' in rec:
            per_epoch.setdefault(rec['epoch'], []).append(rec[key])
    return per_epoch


def test_purity_curve_plots_the_logged_values(demo_run, tmp_path):
    work_dir, _ = demo_run
    out = str(tmp_path / 'purity.png')
    curves = plot_purity([work_dir], out, labels=['CMSF sup'])
    epochs, values = curves['CMSF sup']
    ref = logged(work_dir, 'purity')
    assert epochs.tolist() == sorted(ref) == list(range(1, EPOCHS + 1))
    assert np.allclose(values, [100 * np.mean(ref[e]) for e in sorted(ref)])
    assert is_png(out)
    with pytest.raises(KeyError, match="no logged scalar 'nope'"):
        plot_purity([work_dir], out, key='nope')


def test_neighbour_snapshots_and_grid(demo_run, tmp_path):
    work_dir, _ = demo_run
    snaps = load_snapshots(work_dir)
    assert [int(s['epoch']) for s in snaps] == list(range(EPOCHS + 1))  # 0 = initialisation
    last = snaps[-1]
    emb = torch.from_numpy(last['embedding'].astype(np.float32))
    # the saved neighbours are the nearest pool images of the saved embeddings (self excluded)
    for q, pos in enumerate(last['query_pos']):
        sims = emb @ emb[pos]
        sims[pos] = -np.inf
        assert set(last['nn_pos'][q].tolist()) == set(sims.topk(4).indices.tolist())
    # the last snapshot holds the trained model's embeddings of the pool images
    model = KeepModelHook.model
    assert last['pool_path'][0].startswith(MINI) and len(last['pool_path']) == 50
    ds = ImageFolder(data_root=MINI, data_prefix='train', serialize_data=False,
                     ann_file=demo_run[1].knn_train_dataloader.dataset.ann_file,
                     pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    batch = [ds[int(i)] for i in last['pool_index'][:4]]
    data = model.data_preprocessor(dict(inputs=[b['inputs'] for b in batch],
                                        data_samples=[b['data_samples'] for b in batch]), False)
    model.eval()
    with torch.no_grad():
        f = torch.nn.functional.normalize(model.extract_feat(data['inputs'][0]), dim=1)
    assert torch.allclose(f, emb[:4], atol=2e-3)
    out = str(tmp_path / 'nn.png')
    drawn = plot_neighbours(work_dir, out, queries=[0, 2])
    assert is_png(out) and drawn['epochs'] == [0, 1, 2]
    for s in snaps:
        e = int(s['epoch'])
        assert drawn['neighbours'][e] == [[str(s['pool_path'][p]) for p in s['nn_pos'][q]]
                                          for q in (0, 2)]
    assert drawn['queries'] == [str(last['pool_path'][last['query_pos'][q]]) for q in (0, 2)]


@pytest.mark.parametrize('which', ['backbone', 'target'])
def test_snapshot_embeddings_are_the_models_embed(demo_run, which):
    """The hook embeds its pool through embed_batch with the model's own ``embed``: the same
    values, in pool order, and the model's mode is restored."""
    model = KeepModelHook.model
    ds = ImageFolder(data_root=MINI, data_prefix='train', serialize_data=False,
                     ann_file=demo_run[1].knn_train_dataloader.dataset.ann_file,
                     pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    pool = [1, 3, 4, 8, 9]
    loader = DataLoader(Subset(ds, pool), batch_size=2, collate_fn=pseudo_collate)
    hook = NeighbourSnapshotHook(embedding=which)
    hook.pool_index = np.array(pool)
    model.train()
    emb = hook.embed_pool(model, loader)
    assert model.training
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([ds[i] for i in pool]), False)
        ref = model.embed(data['inputs'][0], which)
    model.train()
    assert emb.shape == ref.shape and torch.allclose(emb, ref.cpu(), atol=1e-5)
    hook.pool_index = np.array(pool[::-1])
    with pytest.raises(RuntimeError, match='out of order'):
        hook.embed_pool(model, loader)


def test_tsne_plots_the_saved_embeddings(demo_run, tmp_path):
    work_dir, _ = demo_run
    out = str(tmp_path / 'tsne.png')
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):  # tiny problem: threads only contend
        drawn = plot_tsne(work_dir, out, epochs=[0, EPOCHS], classes=[0, 3, 5], max_iter=250)
    assert is_png(out) and list(drawn) == ['epoch 0', f'epoch {EPOCHS}']
    snap = load_snapshots(work_dir, epochs=[EPOCHS])[0]
    keep = np.isin(snap['pool_label'], [0, 3, 5])
    d = drawn[f'epoch {EPOCHS}']
    assert np.array_equal(d['input'], snap['embedding'][keep].astype(np.float32))
    assert np.array_equal(d['labels'], snap['pool_label'][keep])
    assert d['xy'].shape == (keep.sum(), 2) and np.isfinite(d['xy']).all()


def test_constrained_rank_histogram_counts_every_published_rank(demo_run, tmp_path):
    work_dir, _ = demo_run
    out = str(tmp_path / 'ranks.png')
    drawn = plot_constrained_ranks(work_dir, out)
    assert is_png(out) and sorted(drawn) == list(range(1, EPOCHS + 1))
    for e in range(1, EPOCHS + 1):
        ranks = torch.cat(RecordRanksHook.ranks[e]).numpy()
        ranks = ranks[ranks > 0]
        saved = np.load(osp.join(work_dir, 'constrained_ranks', f'epoch_{e:04d}.npz'))
        assert np.array_equal(saved['counts'], np.bincount(ranks))
        assert int(saved['num_steps']) == len(RecordRanksHook.ranks[e]) == 80 // 16
        edges, frac = drawn[e]
        assert np.allclose(frac, np.histogram(ranks, bins=edges)[0] / len(ranks))
        assert frac.sum() == pytest.approx(1.0)
    assert ranks.min() >= 1 and ranks.max() <= 64  # 1 .. bank size


def test_results_table_gathers_knn_linear_and_purity(demo_run, tmp_path):
    work_dir, _ = demo_run
    write_results(results_path(work_dir, 'knn', 'epoch_2'), 'knn',
                  {'1-NN': 31.25, '20-NN': 35.5}, checkpoint=f'{work_dir}/epoch_2.pth')
    write_results(results_path(work_dir, 'knn', 'epoch_1'), 'knn',
                  {'1-NN': 11.0, '20-NN': 12.0}, checkpoint=f'{work_dir}/epoch_1.pth')
    write_results(osp.join(work_dir, 'linear', 'x', 'eval', 'linear.json'), 'linear',
                  {'top1': 40.125, 'top5': 80.0}, checkpoint=f'{work_dir}/epoch_2.pth')
    write_results(osp.join(work_dir, 'linear', 'x10p', 'eval', 'linear.json'), 'linear',
                  {'top1': 20.0, 'top5': 60.0}, checkpoint=f'{work_dir}/epoch_3.pth',
                  train_subset='10percent.txt')  # a later checkpoint, but a label-subset probe
    row = gather_run(work_dir, 'CMSF sup (demo)')
    purity = logged(work_dir, 'purity')[EPOCHS]
    # the best epoch of the run's online kNN validation (eval/knn.json), shown beside
    online = read_results(osp.join(work_dir, 'eval', 'knn.json'))['best']
    best = {'NN': (online['1-NN']['value'], online['1-NN']['epoch']),
            '20-NN': (online['20-NN']['value'], online['20-NN']['epoch'])}
    assert row == {'Method': 'CMSF sup (demo)', 'Batch Size': 16, 'Epochs': EPOCHS,
                   'Top-1 Linear': 40.125, 'NN': 31.25, '20-NN': 35.5,
                   'Purity': pytest.approx(100 * np.mean(purity)), 'fast_linear': False,
                   'best': best}
    table = format_table([row], paper=True)
    lines = table.splitlines()
    assert lines[0] == '| Method | Batch Size | Epochs | Top-1 Linear | NN | 20-NN | Purity |'
    assert lines[2].startswith(
        f'| CMSF sup (demo) | 16 | 2 | 40.1 | 31.2 (best {best["NN"][0]:.1f} @ epoch '
        f'{best["NN"][1]}) | 35.5 (best {best["20-NN"][0]:.1f} @ epoch {best["20-NN"][1]}) |')
    assert '| MSF w/s (paper) | 256 | 200 | 72.4 | 62.0 | 64.9 | - |' in lines
    fast = format_table([dict(row, fast_linear=True)])  # a pre-computed-feature probe is marked
    assert '| 40.1* |' in fast and 'pre-computed features' in fast
    with pytest.raises(FileNotFoundError, match='holds no evaluation results'):
        gather_run(str(tmp_path))
