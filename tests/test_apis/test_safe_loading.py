"""Safe loading by construction: every way mmmsf reads a checkpoint refuses a malicious pickle
and never runs its payload -- with and without ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``.

Three malicious files, each otherwise a valid checkpoint of the tiny MSF model: the payload in
``meta`` (zip format), the same in torch's legacy (non-zip) pickle, and the payload as a
state-dict entry. The payload creates a directory; each test checks that it does not exist.
"""
import os
import os.path as osp
import subprocess
import sys
from typing import Callable, Dict

import pytest
import torch
from mmengine.config import Config

from mmmsf.utils.checkpoint import UNSAFE_ENV
from tests.conftest import MINI, ROOT, tiny_msf_cfg

FORMATS = ('meta', 'legacy', 'entry')
MSF_DEMO = osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py')


class Payload:
    """Unpickled by the full unpickler, this calls ``os.makedirs(marker)``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker, ))


def tiny_state() -> Dict[str, torch.Tensor]:
    from mmmsf.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(tiny_msf_cfg()).state_dict()


def write_malicious(path: str, fmt: str, marker: str) -> str:
    state = dict(tiny_state())
    if fmt == 'entry':
        state['evil'] = Payload(marker)
        torch.save(dict(state_dict=state, meta=dict(epoch=1)), path)
    else:
        torch.save(dict(state_dict=state, meta=dict(epoch=1, note=Payload(marker))), path,
                   _use_new_zipfile_serialization=(fmt == 'meta'))
    return path


@pytest.fixture(params=FORMATS)
def malicious(request, tmp_path):
    """(checkpoint path, marker path) of one malicious format."""
    marker = str(tmp_path / f'payload_ran_{request.param}')
    return write_malicious(str(tmp_path / f'{request.param}.pth'), request.param, marker), marker


def _tiny_cfg() -> Config:
    return Config(dict(model=tiny_msf_cfg(), knn_test_dataloader=dict(),
                       knn_cfg=dict(ks=(1, ))))


def _probe_cfg(path: str) -> dict:
    return dict(type='LinearProbe', backbone=tiny_msf_cfg()['backbone'], num_classes=10,
                pretrained=path)


def _linear(path):
    from mmmsf.registry import MODELS
    MODELS.build(_probe_cfg(path)).init_weights()


def _transfer(path):
    from mmmsf.apis.transfer_eval import transfer_eval
    cfg = Config(dict(model=_probe_cfg(None),
                      transfer_cfg=dict(datasets=[dict(name='x', data_root=MINI)])))
    transfer_eval(cfg, path)


def _mmengine_load_checkpoint(path):
    from mmengine.runner.checkpoint import load_checkpoint
    from mmmsf.registry import MODELS
    load_checkpoint(MODELS.build(tiny_msf_cfg()), path, map_location='cpu')


def _mmengine_pretrained_init(path):
    """mmengine's ``init_cfg=dict(type='Pretrained', ...)`` initialiser (mmdet's too)."""
    from mmengine.model.weight_init import PretrainedInit
    from mmmsf.registry import MODELS
    PretrainedInit(checkpoint=path, prefix='backbone.')(MODELS.build(tiny_msf_cfg()).backbone)


def _check_fits(path):
    from mmmsf.utils.checkpoint import check_checkpoint_fits
    from mmmsf.registry import MODELS
    check_checkpoint_fits(MODELS.build(tiny_msf_cfg()), path, resume=False)


def _export(fn_name):
    def run(path):
        from mmmsf.apis import convert
        getattr(convert, fn_name)(path, path + '.out')
    return run


def _detection(path):
    from mmmsf.utils.detection_stack import detection_stack_missing
    if detection_stack_missing():
        pytest.skip(detection_stack_missing())
    from mmmsf.detection.pretrained_resnet_init import load_resnet_weights
    load_resnet_weights(path)


def _import(module, name):
    def run(path):
        import importlib
        getattr(importlib.import_module(module), name)(path)
    return run


LOADERS: Dict[str, Callable[[str], object]] = {
    'read_checkpoint': _import('mmmsf.utils.checkpoint', 'read_checkpoint'),
    'knn (build_model)': lambda p: __import__('mmmsf.apis.evaluate', fromlist=['x'])
    .build_model(_tiny_cfg(), p),
    'knn_from_config': lambda p: __import__('mmmsf.apis.evaluate', fromlist=['x'])
    .knn_from_config(_tiny_cfg(), p),
    't-SNE (embeddings_from_checkpoint)': lambda p: __import__(
        'mmmsf.apis.evaluate', fromlist=['x']).embeddings_from_checkpoint(_tiny_cfg(), p),
    'linear probe': _linear,
    'transfer': _transfer,
    'mmengine CheckpointLoader (load_from, resume)': lambda p: __import__(
        'mmengine.runner.checkpoint', fromlist=['x']).CheckpointLoader.load_checkpoint(p),
    'mmengine load_checkpoint': _mmengine_load_checkpoint,
    'mmengine Pretrained init_cfg': _mmengine_pretrained_init,
    'load_from / resume fit check': _check_fits,
    'authors converter': _import('mmmsf.apis.convert', 'load_authors_checkpoint'),
    'to torchvision': _export('export_torchvision'),
    'to mmdet': _export('export_mmdet'),
    'extract_backbone': lambda p: __import__('mmmsf.utils.model_io', fromlist=['x'])
    .extract_backbone(p, p + '.bb'),
    'detection init': _detection,
}


def test_the_payload_is_live(malicious):
    """The control: torch's full unpickler runs it (so the tests below can fail)."""
    path, marker = malicious
    torch.load(path, weights_only=False)
    assert osp.isdir(marker)


@pytest.mark.parametrize('loader', list(LOADERS))
def test_every_loader_refuses_and_never_runs_the_payload(loader, malicious, monkeypatch):
    path, marker = malicious
    with pytest.raises(ValueError, match='weights-only loading refuses') as e:
        LOADERS[loader](path)
    assert 'os.makedirs' in str(e.value) and path in str(e.value)
    assert not osp.exists(marker)
    monkeypatch.setenv(UNSAFE_ENV, '1')
    with pytest.raises(RuntimeError, match=f'{UNSAFE_ENV}=1 is set') as e:
        LOADERS[loader](path)
    assert 'unset it' in str(e.value) and '\n' not in str(e.value)
    assert not osp.exists(marker)


def test_clean_checkpoints_still_load_with_the_env_unset(tmp_path):
    """The refusal is the payload's doing: the same checkpoints without it load (legacy too)."""
    from mmmsf.apis.evaluate import build_model
    from mmmsf.utils.checkpoint import read_checkpoint
    state = tiny_state()
    for zipped in (True, False):
        path = str(tmp_path / f'clean_{zipped}.pth')
        torch.save(dict(state_dict=state, meta=dict(epoch=1)), path,
                   _use_new_zipfile_serialization=zipped)
        loaded, meta = read_checkpoint(path)
        assert meta == dict(epoch=1) and all(torch.equal(loaded[k], state[k]) for k in state)
        model = build_model(_tiny_cfg(), path)
        assert torch.equal(model.backbone.conv1.weight, state['backbone.conv1.weight'])


@pytest.mark.slow
@pytest.mark.parametrize('fmt', FORMATS)
def test_training_with_load_from_or_resume_refuses_it(fmt, tmp_path):
    """tools/train.py's path: ``load_from`` without resume, and ``--resume``."""
    from mmmsf.apis import load_config, prepare_train_cfg, train
    from tests.test_apis.test_config_errors import _tiny
    marker = str(tmp_path / 'payload_ran')
    path = write_malicious(str(tmp_path / 'evil.pth'), fmt, marker)
    cfg = prepare_train_cfg(load_config(MSF_DEMO, {**_tiny(tmp_path), 'load_from': path}),
                            work_dir=str(tmp_path / 'w'))
    with pytest.raises(ValueError, match='weights-only loading refuses'):
        train(cfg)
    with pytest.raises(ValueError, match='weights-only loading refuses|not a torch checkpoint'):
        cfg = prepare_train_cfg(load_config(MSF_DEMO, _tiny(tmp_path)),
                                work_dir=str(tmp_path / 'w2'), resume=path)
        train(cfg)
    assert not osp.exists(marker)


def test_tools_say_it_in_one_line_when_weights_only_is_forced_off(tmp_path):
    marker = str(tmp_path / 'payload_ran')
    path = write_malicious(str(tmp_path / 'evil.pth'), 'meta', marker)
    env = dict(os.environ, PYTHONPATH=ROOT, **{UNSAFE_ENV: '1'})
    p = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'knn_eval.py'), MSF_DEMO, path],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert p.returncode != 0 and f'{UNSAFE_ENV}=1 is set' in p.stderr
    assert not osp.exists(marker) and not (tmp_path / 'eval').exists()


def test_urls_are_downloaded_then_read_weights_only(tmp_path, monkeypatch):
    """mmengine's http(s) scheme (torch.hub's loader unpickles in full) and unknown schemes."""
    import functools
    import http.server
    import threading
    from mmengine.runner.checkpoint import CheckpointLoader
    served = tmp_path / 'served'
    served.mkdir()
    marker = str(tmp_path / 'payload_ran')
    write_malicious(str(served / 'evil.pth'), 'meta', marker)
    torch.save(dict(state_dict=tiny_state()), str(served / 'clean.pth'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{server.server_address[1]}'
    try:
        with pytest.raises(ValueError, match='os.makedirs, which weights-only loading refuses'):
            CheckpointLoader.load_checkpoint(f'{url}/evil.pth')
        ckpt = CheckpointLoader.load_checkpoint(f'{url}/clean.pth', map_location='cpu')
        assert torch.equal(ckpt['state_dict']['backbone.conv1.weight'],
                           tiny_state()['backbone.conv1.weight'])
    finally:
        server.shutdown()
    assert not osp.exists(marker)
    with pytest.raises(ValueError, match='download this one and give its path'):
        CheckpointLoader.load_checkpoint('s3://bucket/evil.pth')
