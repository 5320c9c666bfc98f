"""Transfer linear evaluation (paper Table 4): frozen features, no train augmentation, one
linear layer, lr chosen on a validation split; one command, several datasets, one table."""
import os
import os.path as osp
import runpy
import sys

import pytest
import torch

from mmmsf.evaluation.feature_linear_classifier import stratified_split
from mmmsf.evaluation.results_io import read_results
from mmmsf.evaluation.transfer import transfer_linear_eval
from tests.conftest import MINI, ROOT

DEMO = osp.join(ROOT, 'configs/benchmarks/linear/transfer_r18_cifar10mini_demo.py')


pytestmark = pytest.mark.usefixtures('one_thread')


def test_lr_is_chosen_on_validation_and_test_is_untouched():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 8, generator=g) * 3
    y = torch.arange(4).repeat(40)
    x = centers[y] + torch.randn(160, 8, generator=g)
    yt = torch.arange(4).repeat(10)
    xt = centers[yt] + torch.randn(40, 8, generator=g)
    res = transfer_linear_eval((x, y), (xt, yt), lrs=(1e-6, 0.1), epochs=5, batch_size=32)
    assert res['lr'] == 0.1 and res['val'] > 80 and res['top1'] > 80  # 1e-6 cannot learn
    assert res['num_train'] == 160 and res['num_test'] == 40
    # with a given val split nothing of the training split is held out
    res2 = transfer_linear_eval((x, y), (xt, yt), val=(xt, yt), lrs=(0.1, ), epochs=5)
    assert res2['num_train'] == 200
    mpc = transfer_linear_eval((x, y), (xt, yt), lrs=(0.1, ), epochs=5, metric='mean_per_class')
    assert 'mean_per_class' in mpc
    tr, va = stratified_split(y, 0.25)
    assert len(va) == 40 and set(y[va].tolist()) == {0, 1, 2, 3}
    assert not set(tr.tolist()) & set(va.tolist()) and len(tr) + len(va) == 160


def make_dataset(root, src_split, per_class, classes=('airplane', 'frog', 'ship')):
    """A small ImageFolder dataset of real images (links into data/cifar10_mini)."""
    for split in ('train', 'test'):
        n = per_class if split == 'train' else max(2, per_class // 2)
        for c in classes:
            d = osp.join(root, split, c)
            os.makedirs(d)
            src = osp.join(MINI, src_split if split == 'train' else 'test', c)
            for name in sorted(os.listdir(src))[:n]:
                os.symlink(osp.join(src, name), osp.join(d, name))
    return str(root)


def test_one_command_several_datasets_one_table(tmp_path, monkeypatch, capsys):
    a = make_dataset(tmp_path / 'setA', 'train', 12)
    b = make_dataset(tmp_path / 'setB', 'train', 10, classes=('cat', 'dog'))
    out = str(tmp_path / 'transfer.json')
    monkeypatch.setattr(sys, 'argv', [
        'transfer_eval.py', DEMO, '--random-init', '--datasets', f'setA={a}',
        f'setB={b}:mean_per_class', '--cache-dir', str(tmp_path / 'cache'), '--out', out,
        '--cfg-options', 'model.backbone.base_channels=4', 'transfer_cfg.epochs=3',
        'transfer_cfg.lrs=[0.01,0.1]', 'transfer_cfg.batch_size=16'])
    runpy.run_path(osp.join(ROOT, 'tools/transfer_eval.py'), run_name='__main__')
    table = capsys.readouterr().out
    assert '| model | setA | setB | Mean |' in table
    rec = read_results(out)
    assert set(rec['results']) == {'setA', 'setB', 'mean'}
    d = rec['details']
    assert d['setA']['metric'] == 'top1' and d['setB']['metric'] == 'mean_per_class'
    assert d['setA']['num_classes'] == 3 and d['setB']['num_classes'] == 2
    assert d['setA']['num_train'] == 36 and d['setA']['num_test'] == 18
    assert d['setA']['lr'] in (0.01, 0.1)
    assert rec['results']['mean'] == pytest.approx((rec['results']['setA']
                                                    + rec['results']['setB']) / 2)
    # features were cached per dataset and split, without augmentation
    assert sorted(os.listdir(tmp_path / 'cache' / 'setA')) == ['test.npz', 'train.npz']


def test_missing_split_fails_clearly(tmp_path):
    from mmmsf.apis import load_config
    from mmmsf.apis.transfer_eval import transfer_eval
    (tmp_path / 'only_train' / 'train' / 'x').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="split folder .*test' does not exist"):
        transfer_eval(load_config(DEMO), None, [dict(name='bad',
                                                     data_root=str(tmp_path / 'only_train'))])


@pytest.mark.parametrize('name', ['transfer_r50_10datasets.py', 'transfer_r18_cifar10mini_demo.py'])
def test_transfer_configs_build(name):
    from mmmsf.apis import load_config
    from mmmsf.registry import MODELS
    cfg = load_config(osp.join(ROOT, 'configs/benchmarks/linear', name))
    model = MODELS.build(cfg.model)
    assert model.head is None and model.backbone is not None
    types = [t['type'] for t in cfg.transfer_cfg.pipeline]
    assert 'RandomResizedCrop' not in types and 'RandomFlip' not in types  # no augmentation
    if 'r50' in name:
        assert len(cfg.transfer_cfg.datasets) == 10 and model.feat_dim == 2048
        mpc = {d['name'] for d in cfg.transfer_cfg.datasets if d.get('metric') == 'mean_per_class'}
        assert mpc == {'Aircraft', 'Pets', 'Caltech101', 'Flowers102'}
