"""End to end on the tiny VOC set: MSF pre-training -> tools/train_detection.py (--repeat) ->
checkpoint -> tools/test_detection.py -> AP50 / AP / AP75, with real mmengine Runners and mmdet.

Here each fine-tuning is 8 CPU iterations: enough for the loss to fall, not for AP to rise
(the classifier first learns "background"). configs/benchmarks/detection/README.md
("Details", linked from docs/evaluation.md's "Detection") gives the 300-iteration smoke run,
where AP50 goes from 0-0.4 (untrained) to 13-19.
"""
import glob
import json
import os
import os.path as osp
import re
import runpy
import sys

import pytest
import torch
from mmengine.registry import init_default_scope

from mmmsf.utils.detection_stack import detection_stack_missing

if detection_stack_missing():  # the light install: skip, saying what is missing
    pytest.skip(detection_stack_missing(), allow_module_level=True)

from mmmsf.apis import load_config, prepare_train_cfg, train  # noqa: E402
from mmmsf.detection import load_detection_config, make_tiny_voc, set_pretrained  # noqa: E402
from tests.conftest import MINI, ROOT  # noqa: E402

TINY = osp.join(ROOT, 'configs/benchmarks/detection/faster-rcnn_r18-c4_tiny-voc_cpu.py')
DEMO = osp.join(ROOT, 'configs/demo/msf_r18_cifar10mini_ws.py')
ITERS = 8


@pytest.fixture(scope='module')
def tiny_voc(tmp_path_factory):
    out = tmp_path_factory.mktemp('tiny_voc')
    make_tiny_voc(MINI, str(out), num_images=(16, 16, 8), seed=0)
    return str(out / 'VOCdevkit')


@pytest.fixture(scope='module')
def msf_checkpoint(tmp_path_factory):
    """A real MSF w/s pre-training run (the CPU demo's config, one short epoch) whose ResNet-18
    has the ImageNet stem and width 16 of the smoke detector and ImageNet mean/std."""
    tmp = tmp_path_factory.mktemp('msf')
    files = [f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(osp.join(MINI, 'train')))
             for i in range(6)]
    (tmp / 'subset.txt').write_text('\n'.join(files) + '\n')
    cfg = load_config(DEMO, {
        'model.backbone.stem': 'imagenet', 'model.backbone.base_channels': 16,
        'model.data_preprocessor.mean': [123.675, 116.28, 103.53],
        'model.data_preprocessor.std': [58.395, 57.12, 57.375],
        'model.neck.in_channels': 128, 'model.neck.hid_channels': 64,
        'model.neck.out_channels': 32, 'model.predictor.in_channels': 32,
        'model.predictor.hid_channels': 64, 'model.predictor.out_channels': 32,
        'model.memory_bank.size': 120, 'model.memory_bank.dim': 32,
        'train_dataloader.batch_size': 20, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.ann_file': str(tmp / 'subset.txt'),
        'knn_train_dataloader.dataset.ann_file': str(tmp / 'subset.txt'),
        'val_dataloader.dataset.ann_file': str(tmp / 'subset.txt'),
        'train_cfg.max_epochs': 1, 'default_hooks.checkpoint.interval': 1,
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=1, by_epoch=True)],
    }, data_root=MINI)
    train(prepare_train_cfg(cfg, work_dir=str(tmp / 'run')))
    return str(tmp / 'run' / 'epoch_1.pth')


def run_tool(script, *args):
    """Run a tools/ script in this process (its real ``main``), as from the command line."""
    argv = sys.argv
    sys.argv = [script] + [str(a) for a in args]
    try:
        runpy.run_path(osp.join(ROOT, 'tools', script), run_name='__main__')
    finally:
        sys.argv = argv


def test_msf_checkpoint_loads_every_backbone_and_res5_tensor(msf_checkpoint):
    state = torch.load(msf_checkpoint, map_location='cpu')['state_dict']
    cfg = load_detection_config(TINY)
    set_pretrained(cfg, msf_checkpoint)
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    det = MODELS.build(cfg.model)
    det.init_weights()
    checked = 0
    for prefix, module in (('backbone.', det.backbone),
                           ('backbone.', det.roi_head.shared_head)):
        for k, v in module.state_dict().items():
            if k.startswith('norm.'):  # the extra norm after res5 is new
                continue
            assert torch.equal(v, state[prefix + k]), k  # weights, biases and BN statistics
            checked += 1
    resnet = [k for k in state if k.startswith('backbone.')]
    assert checked == len(resnet)  # every pre-trained tensor reached the detector
    assert not any(torch.equal(det.backbone.conv1.weight, state[k])
                   for k in state if k.startswith('target_backbone.conv1'))  # the online one


@pytest.mark.slow
def test_train_and_test_tools_end_to_end(tiny_voc, msf_checkpoint, tmp_path, capsys):
    work = tmp_path / 'work'
    opts = ['--cfg-options', f'train_cfg.max_iters={ITERS}',
            f'default_hooks.checkpoint.interval={ITERS}', 'train_cfg.val_interval=1000000',
            'default_hooks.logger.interval=1', 'log_processor.window_size=1',
            'param_scheduler.0.end=2', 'train_dataloader.batch_size=2']
    run_tool('train_detection.py', TINY, '--pretrained', msf_checkpoint, '--data-root', tiny_voc,
             '--work-dir', work, '--repeat', 2, *opts)
    printed = capsys.readouterr().out
    assert re.search(r'mean ± std \(2 runs\) \| \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| ',
                     printed)
    result = json.loads((work / 'repeat_results.json').read_text())
    assert [r['seed'] for r in result['runs']] == [0, 1]
    assert set(result['mean']) == set(result['std']) == {'AP50', 'AP', 'AP75'}
    for k in ('AP50', 'AP', 'AP75'):
        vals = [r[k] for r in result['runs']]
        assert result['mean'][k] == pytest.approx(sum(vals) / 2)
        assert result['std'][k] == pytest.approx(abs(vals[0] - vals[1]) / 2 ** 0.5)
    ckpt = work / 'seed0' / f'iter_{ITERS}.pth'
    assert ckpt.is_file() and (work / 'seed1' / f'iter_{ITERS}.pth').is_file()

    run_tool('test_detection.py', TINY, ckpt, '--data-root', tiny_voc, '--work-dir',
             tmp_path / 'test', '--out', tmp_path / 'ap.json')
    line = capsys.readouterr().out.strip().splitlines()[-1]
    ap = json.loads((tmp_path / 'ap.json').read_text())
    assert line == 'AP50 {AP50:.1f}  AP {AP:.1f}  AP75 {AP75:.1f}'.format(**ap)
    for k in ('AP50', 'AP', 'AP75'):  # the tool re-tests seed 0's checkpoint: same numbers
        assert ap[k] == pytest.approx(result['runs'][0][k], abs=1e-6)
    assert 0 <= ap['AP75'] <= ap['AP50'] <= 100 and ap['AP'] <= ap['AP50']

    for seed in (0, 1):  # every run learns: its loss falls
        scalars = glob.glob(str(work / f'seed{seed}' / '*' / 'vis_data' / 'scalars.json'))
        with open(scalars[0]) as f:
            losses = [json.loads(line)['loss'] for line in f if '"loss"' in line]
        assert len(losses) == ITERS
        first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
        print(f'seed {seed}: loss {first:.3f} -> {last:.3f}', losses)
        assert last < first - 0.2, losses
    # The seeds give different runs from the same pre-trained start.
    w = [torch.load(work / f'seed{s}' / f'iter_{ITERS}.pth', map_location='cpu')['state_dict']
         for s in (0, 1)]
    assert not torch.equal(w[0]['roi_head.bbox_head.fc_cls.weight'],
                           w[1]['roi_head.bbox_head.fc_cls.weight'])
