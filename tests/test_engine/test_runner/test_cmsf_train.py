"""Every CMSF demo config trains through the real mmengine Runner on the bundled images, and a
run resumed mid-epoch continues with the same cluster ids / pseudo-labeller, caches and losses."""
import math
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook

from mmmsf.apis import iter_hooks, load_config, prepare_train_cfg, train
from mmmsf.registry import HOOKS
from mmmsf.utils.model_io import load_state_dict
from tests.conftest import MINI, ROOT, subset_list, tiny_run_options

DEMOS = {name: osp.join(ROOT, 'configs', 'demo', f'cmsf_{name}_r18_cifar10mini.py')
         for name in ('km', '2q', '2q_prev', 'sup', 'semisup_10p')}
PER_CLASS, BATCH = 8, 16  # 80 images: 5 iterations per epoch


@pytest.fixture(autouse=True)
def _one_thread():
    """Width-8 networks gain nothing from intra-op threads; one thread avoids their overhead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@HOOKS.register_module(force=True)
class RecordCMSFHook(Hook):
    """Test hook: keeps (iter, loss, constrained_frac) of every step; can 'kill' the run."""
    records = []

    def __init__(self, kill_at: int = -1):
        self.kill_at = kill_at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        RecordCMSFHook.records.append(
            (runner.iter, float(outputs['loss'].detach()), float(outputs['constrained_frac']),
             sorted(outputs)))
        if runner.iter == self.kill_at:
            raise KeyboardInterrupt('simulated kill')


def tiny_demo(name, tmp_path, work_dir, epochs=2, kill_at=-1, **opts):
    options = tiny_run_options(subset_list(tmp_path, PER_CLASS, 'subset.txt'), epochs, BATCH)
    options.update({
        'model.target_bn': 'none',
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=3, by_epoch=False,
                                         max_keep_ckpts=10),
    })
    options.update(opts)
    cfg = load_config(DEMOS[name], options, data_root=MINI)
    for h in iter_hooks(cfg):
        if h['type'] == 'KMeansClusterHook':
            h['num_clusters'] = 4
        if h['type'] == 'PseudoLabelHook':
            h['labelled_list'] = subset_list(tmp_path, 2, 'labelled.txt')
            h['batch_size'] = 8
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='RecordCMSFHook', kill_at=kill_at)]
    return prepare_train_cfg(cfg, work_dir=str(work_dir))


def run(name, tmp_path, work_dir, **kw):
    RecordCMSFHook.records = []
    runner = train(tiny_demo(name, tmp_path, work_dir, **kw))
    return runner, {it: (loss, frac) for it, loss, frac, _ in RecordCMSFHook.records}


STATS = {'loss', 'purity', 'unconstrained_purity', 'constrained_frac', 'c_short_frac'}


@pytest.mark.slow
@pytest.mark.parametrize('name', ['2q', '2q_prev', 'sup'])
def test_demo_config_trains(name, tmp_path):
    runner, rec = run(name, tmp_path, tmp_path / name)
    assert sorted(rec) == list(range(10))
    assert all(math.isfinite(loss) for loss, _ in rec.values())
    assert STATS <= set(RecordCMSFHook.records[-1][3])
    fracs = [rec[i][1] for i in range(10)]
    if name == '2q_prev':  # first visits have no previous embedding: epoch 1 is unconstrained
        assert fracs[:5] == [0.0] * 5 and fracs[5:] == [1.0] * 5
        assert bool(runner.model.embedding_cache.valid.all())
    else:
        assert fracs == [1.0] * 10
    if name == '2q':
        sel = runner.model.constrained_selector
        assert bool(sel.second_valid.all())  # 160 targets went through the 128-slot banks
        sims = (sel.second_bank * runner.model.memory_bank.bank).sum(1)  # M' slot vs M slot
        assert float(sims.max()) < 1 - 1e-4 and float(sims.mean()) > 0.5  # same image, other view
    assert osp.isfile(osp.join(runner.work_dir, 'constrained_ranks', 'epoch_0001.npz'))


@pytest.mark.slow
@pytest.mark.parametrize('name', ['km', 'semisup_10p'])
def test_demo_config_trains_and_resumes_mid_epoch(name, tmp_path):
    runner, full = run(name, tmp_path, tmp_path / 'full')
    assert sorted(full) == list(range(10))
    sel = runner.model.constrained_selector
    if name == 'km':  # epoch 1 unconstrained, then the k-means ids of every image constrain
        assert [full[i][1] for i in range(10)] == [0.0] * 5 + [1.0] * 5
        assert sel.cluster_ids.numel() == 80 and bool((sel.cluster_ids >= 0).all())
    else:  # labelled queries constrained from the start; the classifier got trained
        assert all(full[i][1] > 0 for i in full) and bool(sel.trained)
        assert int(sel.is_labelled.sum()) == 20
    with pytest.raises(KeyboardInterrupt):  # killed in epoch 2 after the iter-6 checkpoint
        run(name, tmp_path, tmp_path / "cut", kill_at=7)
    cfg = tiny_demo(name, tmp_path, tmp_path / 'cut')
    cfg = prepare_train_cfg(cfg, resume=str(tmp_path / 'cut' / 'iter_6.pth'))
    RecordCMSFHook.records = []
    train(cfg)
    resumed = {it: (loss, frac) for it, loss, frac, _ in RecordCMSFHook.records}
    assert sorted(resumed) == [6, 7, 8, 9]  # 0-based: the rest of epoch 2
    for it in resumed:  # same constraint (ids / classifier restored) -> same losses
        assert abs(resumed[it][0] - full[it][0]) < 1e-5, (it, resumed[it], full[it])
        assert resumed[it][1] == full[it][1]
    a = load_state_dict(str(tmp_path / 'full' / 'iter_10.pth'))
    b = load_state_dict(str(tmp_path / 'cut' / 'iter_10.pth'))
    keys = [k for k in a if k.startswith(('embedding_cache.', 'constrained_selector.'))]
    assert 'embedding_cache.embeddings' in keys
    for key in keys:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key
