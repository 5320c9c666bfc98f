"""Linear probe (paper §3.2): frozen backbone, training-set standardisation, one Linear layer,
run by mmengine's Runner on real images; pre-computed-feature mode; configs."""
import glob
import json
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmmsf.apis import load_config
from mmmsf.apis.linear_eval import linear_eval, prepare_linear_cfg
from mmmsf.datasets.label_subset import make_subset_list, write_subset_list
from mmmsf.engine.hooks import FeatureStatisticsHook
from mmmsf.evaluation import extract_features
from mmmsf.registry import HOOKS, MODELS
from tests.conftest import MINI, ROOT, tiny_msf_cfg
from tests.gloo import free_port, init_gloo, start_gloo

DEMO = osp.join(ROOT, 'configs/benchmarks/linear/linear_r18_cifar10mini_demo.py')
LINEAR_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/benchmarks/linear/linear_*.py')))


def subset(tmp_path, split, fraction):
    return write_subset_list(make_subset_list(osp.join(MINI, split), fraction),
                             str(tmp_path / f'{split}_{fraction}.txt'))


def demo_cfg(tmp_path, checkpoint, work_dir, train_frac=0.03, val_frac=0.05, epochs=2, **extra):
    tr, va = subset(tmp_path, 'train', train_frac), subset(tmp_path, 'test', val_frac)
    opts = {'model.backbone.base_channels': 8,
            'train_dataloader.dataset.ann_file': tr, 'train_dataloader.batch_size': 16,
            'val_dataloader.dataset.ann_file': va,
            'linear_cfg.stats_dataloader.dataset.ann_file': tr,
            'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs,
            'default_hooks.checkpoint': dict(type='CheckpointHook', interval=1000,
                                             save_last=False),
            'linear_cfg.stats_dataloader.dataset.serialize_data': False}
    for loader in ('train_dataloader', 'val_dataloader'):
        opts.update({f'{loader}.num_workers': 0, f'{loader}.persistent_workers': False,
                     f'{loader}.dataset.serialize_data': False})
    opts.update(extra)
    cfg = load_config(DEMO, opts, data_root=MINI)
    cfg.linear_cfg.stats_dataloader.dataset.data_root = MINI
    return prepare_linear_cfg(cfg, checkpoint, work_dir=str(work_dir))


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def msf_checkpoint(tmp_path_factory):
    """An mmmsf checkpoint of the demo architecture at width 8 (seeded init, BN statistics
    moved so that eval-mode BN is not the identity)."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmmsf')  # module-scoped: runs before the autouse scope fixture
    torch.manual_seed(3)
    model = MODELS.build(tiny_msf_cfg(width=8))
    model.init_weights()
    for m in model.backbone.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    path = str(tmp_path_factory.mktemp('msf') / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), path)
    return path, model


def test_statistics_equal_numpy_reference(tmp_path, msf_checkpoint):
    ckpt, msf = msf_checkpoint
    cfg = demo_cfg(tmp_path, ckpt, tmp_path / 'wd')
    probe = MODELS.build(cfg.model)
    probe.init_weights()
    for k, v in msf.backbone.state_dict().items():  # the checkpoint's online backbone
        assert torch.equal(probe.backbone.state_dict()[k], v)
    loader = Runner.build_dataloader(cfg.linear_cfg.stats_dataloader)
    mean, var, n = FeatureStatisticsHook.compute(probe, loader)
    feats = []
    with torch.no_grad():
        for batch in loader:
            x = probe.data_preprocessor(batch, False)['inputs'][0]
            feats.append(msf.backbone.eval()(x).numpy().astype(np.float64))
    f = np.concatenate(feats)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    assert n == len(f) == 90  # 3% of 3,000
    np.testing.assert_allclose(mean.numpy(), f.mean(0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(var.numpy(), f.var(0, ddof=1), rtol=1e-4, atol=1e-9)
    probe.standardizer.set_statistics(mean.float(), var.float(), n)
    y = probe.standardizer(torch.from_numpy(f * 7.0).float()).numpy()  # scale-free: L2 first
    np.testing.assert_allclose(y, (f - f.mean(0)) / np.sqrt(f.var(0, ddof=1) + 1e-5),
                               rtol=1e-3, atol=1e-3)
    assert np.allclose(y.mean(0), 0, atol=1e-4)  # (std < 1 by eps=1e-5, as the reference)


@HOOKS.register_module(force=True)
class KeepRunnerHook(Hook):
    """Test hook: remembers the runner (to inspect the trained model)."""
    runner = None

    def after_train(self, runner):
        KeepRunnerHook.runner = runner


def test_runner_probe_keeps_backbone_frozen_and_caches_statistics(tmp_path, msf_checkpoint):
    ckpt, msf = msf_checkpoint
    cfg = demo_cfg(tmp_path, ckpt, tmp_path / 'wd')
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='KeepRunnerHook')]
    assert [t['type'] for t in cfg.train_dataloader.dataset.pipeline][1:3] == [
        'RandomResizedCrop', 'RandomFlip']
    metrics = linear_eval(cfg)
    assert set(metrics) == {'top1', 'top5'} and 0 <= metrics['top1'] <= metrics['top5'] <= 100
    res = json.load(open(tmp_path / 'wd' / 'eval' / 'linear.json'))
    assert res['kind'] == 'linear' and res['results'] == metrics and res['checkpoint'] == ckpt
    runner = KeepRunnerHook.runner
    probe = runner.model
    assert runner.epoch == 2 and not probe.backbone.training  # eval mode during training
    for k, v in msf.backbone.state_dict().items():  # weights AND BN statistics unchanged
        assert torch.equal(probe.backbone.state_dict()[k], v), k
    assert int(probe.standardizer.num_samples) == 90
    cache = tmp_path / 'wd' / 'feature_stats.pth'
    stats = torch.load(str(cache), weights_only=True)
    assert torch.equal(stats['mean'], probe.standardizer.mean)

    # the statistics hook on a fresh probe: reuses the cache for the same weights and images,
    # recomputes for other weights (the cache is keyed by a fingerprint of the backbone)
    def before_train(model):
        stub = SimpleNamespace(model=model, cfg=cfg, work_dir=str(tmp_path / 'wd'), seed=0,
                               logger=runner.logger, build_dataloader=Runner.build_dataloader)
        calls = []
        orig = FeatureStatisticsHook.compute
        FeatureStatisticsHook.compute = staticmethod(lambda *a: calls.append(1) or orig(*a))
        try:
            FeatureStatisticsHook().before_train(stub)
        finally:
            FeatureStatisticsHook.compute = staticmethod(orig)
        return len(calls)

    same = MODELS.build(cfg.model)
    same.init_weights()
    assert before_train(same) == 0 and torch.equal(same.standardizer.var, stats['var'])
    other = MODELS.build(dict(cfg.model, pretrained=None))
    other.init_weights()
    assert before_train(other) == 1
    assert not torch.equal(other.standardizer.mean, stats['mean'])


def test_precomputed_features_probe_learns_above_chance(tmp_path, msf_checkpoint):
    ckpt, _ = msf_checkpoint
    cfg = demo_cfg(tmp_path, ckpt, tmp_path / 'fast', train_frac=0.3, val_frac=0.3, epochs=15,
                   **{'train_dataloader.batch_size': 64, 'optim_wrapper.optimizer.lr': 0.1,
                      'param_scheduler': [dict(type='MultiStepLR', by_epoch=True,
                                               milestones=[10], gamma=0.1)]})
    metrics = linear_eval(cfg, precompute=True)
    feats = np.load(str(tmp_path / 'fast' / 'features' / 'train.npz'))
    assert feats['feats'].shape == (900, 64)  # raw features of the 30% list, no augmentation
    # 10 balanced classes: chance is 10% top-1 / 50% top-5 on the 300 test images
    # (measured: 21.0 / 78.3; 15% is > 3 standard deviations above chance)
    assert metrics['top1'] > 15.0 and metrics['top5'] > 65.0, metrics


@HOOKS.register_module(force=True)
class StopAtEpochHook(Hook):
    """Test hook: 'kills' the run when the given (0-based) training epoch starts."""

    def __init__(self, stop_at: int = -1):
        self.stop_at = stop_at

    def before_train_epoch(self, runner):
        if runner.epoch == self.stop_at:
            raise KeyboardInterrupt('simulated kill')


def test_linear_results_keep_history_and_best_across_a_resume(tmp_path, msf_checkpoint):
    ckpt, _ = msf_checkpoint
    work = tmp_path / 'wd'
    every_epoch = {'train_cfg.val_interval': 1, 'default_hooks.checkpoint': dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=10, save_last=True)}
    cfg = demo_cfg(tmp_path, ckpt, work, epochs=3, **every_epoch)
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='StopAtEpochHook', stop_at=2)]
    with pytest.raises(KeyboardInterrupt):  # killed after epoch 2's validation
        linear_eval(cfg)
    path = work / 'eval' / 'linear.json'
    before = json.load(open(path))['history']
    assert [h['epoch'] for h in before] == [1, 2]
    # epoch 2's checkpoint is written before epoch 2's validation: it holds epoch 1's
    ck = torch.load(str(work / 'epoch_2.pth'), map_location='cpu', weights_only=True)
    assert ck['message_hub']['runtime_info']['linear_history'] == before[:1]

    cfg = demo_cfg(tmp_path, ckpt, work, epochs=3, **every_epoch)
    cfg = prepare_linear_cfg(cfg, ckpt, work_dir=str(work), resume='auto')
    metrics = linear_eval(cfg)
    res = json.load(open(path))
    assert res['kind'] == 'linear' and res['epoch'] == 3 and res['results'] == metrics
    assert res['history'][:2] == before  # epoch 1 from the checkpoint, epoch 2 from the file
    assert res['history'][2] == dict(epoch=3, **metrics)
    for name in ('top1', 'top5'):
        top = max(res['history'], key=lambda h: (h[name], -h['epoch']))
        assert res['best'][name] == dict(value=top[name], epoch=top['epoch'])
    assert res['checkpoint'] == ckpt and res['precomputed_features'] is False


def test_demo_probes_match_the_demo_pre_training_backbone():
    pre = load_config(osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py')).model.backbone
    for name in ('linear_r18_cifar10mini_demo.py', 'transfer_r18_cifar10mini_demo.py'):
        cfg = load_config(osp.join(ROOT, 'configs/benchmarks/linear', name))
        assert cfg.model.backbone == pre, name


@pytest.mark.parametrize('path', LINEAR_CONFIGS, ids=lambda p: osp.basename(p))
def test_linear_configs_build_and_follow_the_protocol(path):
    cfg = load_config(path)
    model = MODELS.build(cfg.model)
    assert model.backbone is not None and not any(
        p.requires_grad for p in model.backbone.parameters())
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        'head.weight', 'head.bias']
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.01, momentum=0.9,
                                               weight_decay=1e-4)
    assert cfg.param_scheduler == [dict(type='MultiStepLR', by_epoch=True, milestones=[15, 30],
                                        gamma=0.1)]
    assert cfg.train_cfg.max_epochs == 40
    if 'r50_imagenet' in path:
        assert cfg.train_dataloader.batch_size * 8 == 256 and model.feat_dim == 2048
        assert [t['type'] for t in cfg.val_dataloader.dataset.pipeline] == [
            'LoadImageFromFile', 'Resize', 'CenterCrop', 'PackInputs']
        assert cfg.val_dataloader.dataset.pipeline[2]['crop_size'] == 224
        assert cfg.train_dataloader.dataset.pipeline[1] == dict(type='RandomResizedCrop',
                                                                size=224)
        if 'percent' in path:
            pct = '1percent' if '_1percent' in path else '10percent'
            assert cfg.train_dataloader.dataset.ann_file == f'meta/{pct}.txt'
            assert cfg.linear_cfg.stats_dataloader.dataset.ann_file == f'meta/{pct}.txt'


def _two_process_worker(rank, port, cfg_dict, out):
    """One of two gloo processes: statistics and features over the rank's shard."""
    from mmengine.config import Config
    from mmmsf.evaluation import extract_features
    init_gloo(rank, 2, port)
    cfg = Config(cfg_dict)
    probe = MODELS.build(cfg.model)
    probe.init_weights()
    loader = Runner.build_dataloader(cfg.linear_cfg.stats_dataloader, seed=0)
    mean, var, n = FeatureStatisticsHook.compute(probe, loader)
    val = Runner.build_dataloader(cfg.val_dataloader, seed=0)  # round_up: a padded shard
    feats, labels = extract_features(probe, val, normalize=False)
    if rank == 0:
        torch.save(dict(mean=mean, var=var, n=n, feats=feats, labels=labels,
                        shard=len(loader.sampler)), out)
    torch.distributed.destroy_process_group()


def test_two_processes_give_the_single_process_statistics_and_features(tmp_path, msf_checkpoint):
    """Two gloo processes (the path of tools/dist_linear_eval.sh): each image is counted once
    (shards + all-reduce) and gathered features come back in dataset order, so the results
    equal the single-process ones."""
    ckpt, _ = msf_checkpoint
    cfg = demo_cfg(tmp_path, ckpt, tmp_path / 'wd', train_frac=0.01, val_frac=0.01)
    cfg.val_dataloader.batch_size = 4  # 10 images: shards of 5 + 1 padded duplicate
    out = str(tmp_path / 'dist.pth')
    start_gloo(_two_process_worker, (free_port(), cfg.to_dict(), out), nprocs=2)
    dist = torch.load(out, weights_only=True)
    probe = MODELS.build(cfg.model)
    probe.init_weights()
    mean, var, n = FeatureStatisticsHook.compute(
        probe, Runner.build_dataloader(cfg.linear_cfg.stats_dataloader))
    feats, labels = extract_features(probe, Runner.build_dataloader(cfg.val_dataloader),
                                     normalize=False)
    assert dist['n'] == n == 30 and dist['shard'] == 15
    # float64 sums in another order: equal to rounding
    assert torch.allclose(dist['mean'], mean, rtol=1e-12, atol=0)
    assert torch.allclose(dist['var'], var, rtol=1e-9, atol=0)
    assert torch.equal(dist['labels'], labels) and torch.allclose(dist['feats'], feats)
