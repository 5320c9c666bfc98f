"""Checkpoint conversion: the authors' MSF layout -> mmmsf -> torchvision / mmdet / authors.

The authors' checkpoint is built here the way their train_msf.py builds and saves it
(torchvision ResNet encoders with an MLP ``fc`` wrapped in DataParallel, a predictor, the queue
buffers, an SGD optimiser over encoder_q + predict_q, and the argparse ``opt``).
"""
import argparse
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torchvision
from mmengine.hooks import Hook

from mmmsf.apis.convert import (convert_authors_checkpoint, export_mmdet, export_torchvision,
                                load_authors_checkpoint)
from mmmsf.registry import HOOKS, MODELS
from mmmsf.utils.authors_checkpoint import authors_to_mmmsf_state, mmmsf_to_authors_state
from mmmsf.utils.model_io import load_state_dict

K, DIM = 256, 128


def mlp(i, h, o):
    return nn.Sequential(nn.Linear(i, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True),
                         nn.Linear(h, o))


class AuthorsMeanShift(nn.Module):
    """The module layout of the authors' MeanShift (ResNet-18 here), after data_parallel()."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        q, t = torchvision.models.resnet18(), torchvision.models.resnet18()
        q.fc, t.fc = mlp(512, 1024, DIM), mlp(512, 1024, DIM)
        t.load_state_dict(q.state_dict())
        for p in t.parameters():
            p.requires_grad = False
        self.encoder_q, self.encoder_t = nn.DataParallel(q), nn.DataParallel(t)
        self.predict_q = nn.DataParallel(mlp(DIM, 1024, DIM))
        self.register_buffer('queue', nn.functional.normalize(torch.randn(K, DIM), dim=1))
        self.register_buffer('labels', torch.randint(0, 10, (K, )))
        self.register_buffer('queue_ptr', torch.tensor([64]))


def authors_checkpoint(path, epoch=3):
    model = AuthorsMeanShift()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(1):  # real momentum buffers and moved BN statistics
        loss = model.predict_q(model.encoder_q(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save({'opt': argparse.Namespace(arch='resnet18', topk=5, lr_decay_epochs=[90, 120]),
                'state_dict': model.state_dict(), 'optimizer': opt.state_dict(),
                'epoch': epoch}, path)
    return model, opt


def mmmsf_cfg():
    return dict(type='MSF', backbone=dict(type='ResNet', depth=18),
                neck=dict(type='MLPNeck', in_channels=512, hid_channels=1024, out_channels=DIM),
                predictor=dict(type='MLPNeck', in_channels=DIM, hid_channels=1024,
                               out_channels=DIM),
                memory_bank=dict(type='NNMemoryBank', size=K, dim=DIM), topk=3)


@pytest.fixture(scope='module')
def authors_ckpt(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('authors') / 'ckpt_epoch_3.pth')
    model, _ = authors_checkpoint(path)
    return model, path


def test_authors_to_mmmsf_to_torchvision_round_trip(tmp_path, authors_ckpt):
    authors, src = authors_ckpt
    dst = str(tmp_path / 'mmmsf.pth')
    summary = convert_authors_checkpoint(src, dst)
    assert summary['epoch'] == 3 and not summary['resumable']
    state = load_state_dict(dst)
    model = MODELS.build(mmmsf_cfg())
    model.load_state_dict(state, strict=True)  # every key maps, nothing left over
    a = authors.state_dict()
    for k, v in a.items():  # identical tensors
        if k.startswith('encoder_q.module.fc.'):
            new = 'neck.mlp.' + k[len('encoder_q.module.fc.'):]
        elif k.startswith('encoder_q.module.'):
            new = 'backbone.' + k[len('encoder_q.module.'):]
        elif k.startswith('encoder_t.module.fc.'):
            new = 'target_neck.mlp.' + k[len('encoder_t.module.fc.'):]
        elif k.startswith('encoder_t.module.'):
            new = 'target_backbone.' + k[len('encoder_t.module.'):]
        elif k.startswith('predict_q.module.'):
            new = 'predictor.mlp.' + k[len('predict_q.module.'):]
        else:
            new = {'queue': 'memory_bank.bank', 'labels': 'memory_bank.labels',
                   'queue_ptr': 'memory_bank.ptr'}[k]
        assert torch.equal(state[new].reshape(v.shape), v), k
    assert int(state['memory_bank.num_written']) == K  # epoch >= 1: the bank is full
    assert torch.equal(state['memory_bank.sample_idx'], torch.full((K, ), -1))
    # identical backbone outputs: authors' encoder (fc removed) vs mmmsf backbone, eval mode
    x = torch.randn(2, 3, 32, 32)
    enc = copy.deepcopy(authors.encoder_q.module).eval()
    enc.fc = nn.Identity()
    model.eval()
    with torch.no_grad():
        ref, ours = enc(x), model.backbone(x)
        assert torch.equal(ref, ours)
        assert torch.equal(authors.predict_q.module.eval()(authors.encoder_q.module.fc.eval()(ref)),
                           model.predictor(model.neck(ours)))
    # mmmsf -> torchvision: loads with only fc missing, same outputs
    tv_path = str(tmp_path / 'tv.pth')
    export_torchvision(dst, tv_path)
    tv = torchvision.models.resnet18()
    res = tv.load_state_dict(torch.load(tv_path, weights_only=True), strict=False)
    assert sorted(res.missing_keys) == ['fc.bias', 'fc.weight'] and not res.unexpected_keys
    tv.fc = nn.Identity()
    with torch.no_grad():
        assert torch.equal(tv.eval()(x), ref)
    # mmmsf -> authors gives back the authors' tensors exactly
    back = mmmsf_to_authors_state(state)
    assert list(back) == list(a) and all(torch.equal(back[k], a[k]) for k in a)


def test_converted_checkpoint_is_accepted_by_linear_probe(tmp_path, authors_ckpt):
    authors, src = authors_ckpt
    dst = str(tmp_path / 'm.pth')
    convert_authors_checkpoint(src, dst)
    probe = MODELS.build(dict(type='LinearProbe', backbone=dict(type='ResNet', depth=18),
                              num_classes=10, pretrained=dst))
    probe.init_weights()
    for k, v in authors.encoder_q.module.state_dict().items():
        if not k.startswith('fc.'):
            assert torch.equal(probe.backbone.state_dict()[k], v)
    # an authors' checkpoint given directly is refused with the converter's name
    bad = MODELS.build(dict(type='LinearProbe', backbone=dict(type='ResNet', depth=18),
                            num_classes=10, pretrained=src))
    with pytest.raises(KeyError, match='authors_to_mmmsf'):
        bad.init_weights()


def test_unknown_authors_keys_are_not_dropped_silently():
    state = {'encoder_q.module.conv1.weight': torch.zeros(1), 'pool': torch.zeros(2, 3, 4)}
    with pytest.raises(KeyError, match='--map'):
        authors_to_mmmsf_state(state)
    out = authors_to_mmmsf_state(state, drop=['pool'])
    assert list(out) == ['backbone.conv1.weight']
    out = authors_to_mmmsf_state(state, extra_map={'pool': 'previous.pool'})
    assert torch.equal(out['previous.pool'], state['pool'])


def test_mmdet_c4_layout_gives_identical_features(tmp_path):
    from mmmsf.utils.detection_stack import detection_stack_missing
    if detection_stack_missing():
        pytest.skip(detection_stack_missing())
    from mmdet.models.backbones import ResNet as MMDetResNet
    from mmdet.models.roi_heads.shared_heads import ResLayer
    torch.manual_seed(0)
    model = MODELS.build(mmmsf_cfg())
    model.init_weights()
    for m in model.backbone.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ckpt = str(tmp_path / 'm.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'det.pth')
    export_mmdet(ckpt, out, layout='c4')
    sd = torch.load(out, weights_only=True)['state_dict']
    assert any(k.startswith('roi_head.shared_head.layer4.') for k in sd)
    assert not any(k.startswith('backbone.layer4.') for k in sd)
    # mmdet's C4 pieces: ResNet with 3 stages + the res5 shared head
    backbone = MMDetResNet(depth=18, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                           out_indices=(2, ), style='pytorch', norm_eval=True)
    head = ResLayer(depth=18, stage=3, stride=2, style='pytorch', norm_eval=True)
    bb = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    hd = {k[len('roi_head.shared_head.'):]: v for k, v in sd.items()
          if k.startswith('roi_head.shared_head.')}
    assert not backbone.load_state_dict(bb, strict=True).missing_keys
    assert not head.load_state_dict(hd, strict=True).missing_keys
    x = torch.randn(2, 3, 32, 32)
    backbone.eval()  # mmdet's train() returns None: no chaining
    head.eval()
    with torch.no_grad():
        c4 = backbone(x)[0]
        det = torch.flatten(nn.functional.adaptive_avg_pool2d(head(c4), 1), 1)
        assert torch.allclose(det, model.backbone.eval()(x), atol=1e-6, rtol=0)


def test_small_stem_and_non_mmmsf_files_fail_clearly(tmp_path):
    small = MODELS.build(dict(mmmsf_cfg(), backbone=dict(type='ResNet', depth=18, stem='small')))
    p = str(tmp_path / 's.pth')
    torch.save(dict(state_dict=small.state_dict()), p)
    with pytest.raises(ValueError, match='small-image stem'):
        export_torchvision(p, str(tmp_path / 'tv.pth'))
    with pytest.raises(KeyError, match='not an authors'):
        load_authors_checkpoint(p)


@HOOKS.register_module(force=True)
class CaptureResumeHook(Hook):
    """Test hook: what the run looks like right after --resume."""
    seen = {}

    def before_train(self, runner):
        model = runner.model
        opt = runner.optim_wrapper.optimizer
        p = model.backbone.conv1.weight
        CaptureResumeHook.seen = dict(
            epoch=runner.epoch, iter=runner.iter, lr=opt.param_groups[0]['lr'],
            momentum=opt.state[p]['momentum_buffer'].clone(),
            bank=model.memory_bank.bank.clone(), ptr=int(model.memory_bank.ptr))


def test_resumable_conversion_continues_training(tmp_path):
    """authors' layout (built from a tiny mmmsf model) -> resumable mmmsf checkpoint ->
    tools/train.py --resume continues at the right epoch, LR, momentum and bank."""
    from mmengine.config import Config
    from mmmsf.apis import prepare_train_cfg, train
    from tests.test_engine.test_runner.test_train_runner import DEMO, tiny_cfg
    cfg = tiny_cfg(tmp_path, tmp_path / 'run', epochs=3, per_class=4, batch=16,
                   extra_hooks=[dict(type='CaptureResumeHook')])
    opts = {k: cfg[k] for k in ('train_dataloader', 'train_cfg', 'param_scheduler')}
    opts['model'] = cfg.model
    model = MODELS.build(cfg.model)
    model.init_weights()
    authors = mmmsf_to_authors_state(model.state_dict())
    names = [k for k in authors if k.startswith(('encoder_q.', 'predict_q.'))
             and not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))]
    params = [nn.Parameter(authors[k].clone()) for k in names]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
    sum(p.sum() for p in params).backward()
    opt.step()
    src, dst = str(tmp_path / 'authors.pth'), str(tmp_path / 'resume.pth')
    torch.save(dict(opt=argparse.Namespace(epochs=3), state_dict=authors,
                    optimizer=opt.state_dict(), epoch=2), src)
    iters = 40 // 16
    summary = convert_authors_checkpoint(src, dst, DEMO, iters_per_epoch=iters,
                                         cfg_options=Config(opts).to_dict())
    assert summary['resumable'] and summary['momentum_buffers'] == len(names)
    cfg = prepare_train_cfg(cfg, work_dir=str(tmp_path / 'run'), resume=dst)
    runner = train(cfg)
    seen = CaptureResumeHook.seen
    assert seen['epoch'] == 2 and seen['iter'] == 2 * iters
    assert seen['lr'] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 2 / 3)))
    i = names.index('encoder_q.module.conv1.weight')
    assert torch.equal(seen['momentum'], opt.state[params[i]]['momentum_buffer'])
    assert torch.equal(seen['bank'], authors['queue']) and seen['ptr'] == 0
    assert runner.epoch == 3 and osp.isfile(str(tmp_path / 'run' / 'epoch_3.pth'))
