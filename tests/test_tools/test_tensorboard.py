"""tools/train.py --tensorboard writes TensorBoard event files next to scalars.json with the
same scalars (training and online kNN); --no-validate trains without the kNN validation."""
import glob
import json
import os.path as osp
import runpy
import sys

import pytest
import torch

from tests.conftest import MINI, ROOT
from tests.test_evaluation.test_online_knn import write_list

DEMO = osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py')


def train_tool(tmp_path, monkeypatch, work, *flags):
    lst = write_list(tmp_path / 'few.txt', 'train', 4)  # 40 images: 5 iterations of 8
    # k = 5: the demo's k = 1 has no neighbours besides the query, so no purity is logged
    opts = ['model.topk=5', 'model.backbone.base_channels=8', 'model.neck.in_channels=64',
            'model.memory_bank.size=64', 'train_dataloader.batch_size=8',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            f'train_dataloader.dataset.ann_file={lst}',
            f'knn_train_dataloader.dataset.ann_file={lst}',
            f'val_dataloader.dataset.ann_file={lst}', 'train_cfg.max_epochs=1',
            'default_hooks.logger.interval=1']
    monkeypatch.setattr(sys, 'argv', ['train.py', DEMO, '--work-dir', str(work), '--data-root',
                                      MINI, *flags, '--cfg-options', *opts])
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runpy.run_path(osp.join(ROOT, 'tools/train.py'), run_name='__main__')
    finally:
        torch.set_num_threads(n)


def scalars(work):
    (path, ) = glob.glob(osp.join(str(work), '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.slow
def test_tensorboard_event_file_holds_the_logged_scalars(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    work = tmp_path / 'tb'
    train_tool(tmp_path, monkeypatch, work, '--tensorboard')
    events = glob.glob(osp.join(str(work), '*', 'vis_data', 'events.out.tfevents.*'))
    assert len(events) == 1, events
    acc = EventAccumulator(events[0])
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'loss', 'lr', 'purity', 'target_std', 'knn/top1@1', 'knn/top1@20'} <= tags, tags
    recs = scalars(work)
    train_recs = [r for r in recs if 'loss' in r]
    assert len(train_recs) == 5
    for key in ('loss', 'lr', 'purity'):
        tb = {e.step: e.value for e in acc.Scalars(key)}
        assert sorted(tb) == [r['step'] for r in train_recs]
        for r in train_recs:
            assert tb[r['step']] == pytest.approx(r[key], rel=1e-6)  # float32 in the event file
    (val, ) = [r for r in recs if 'knn/top1@1' in r]
    for key in ('knn/top1@1', 'knn/top1@20'):
        (ev, ) = acc.Scalars(key)
        assert ev.step == val['step'] == 1 and ev.value == pytest.approx(val[key], rel=1e-6)


@pytest.mark.slow
def test_no_validate_trains_without_knn(tmp_path, monkeypatch):
    work = tmp_path / 'noval'
    train_tool(tmp_path, monkeypatch, work, '--no-validate')
    recs = scalars(work)
    assert len([r for r in recs if 'loss' in r]) == 5
    assert not [r for r in recs if any(k.startswith('knn/') for k in r)]
    assert not osp.exists(work / 'eval' / 'knn.json') and osp.isfile(work / 'epoch_1.pth')
    assert not glob.glob(osp.join(str(work), '*', 'vis_data', 'events.out.tfevents.*'))
