"""tools/check_images.py finds an unreadable image of any dataset of a config before training."""
import os
import os.path as osp
import shutil
import subprocess
import sys

from tests.conftest import MINI, ROOT

DEMO = osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py')


def _data(tmp_path):
    data = tmp_path / 'data'
    for split in ('train', 'test'):
        for c in sorted(os.listdir(osp.join(MINI, split))):
            os.makedirs(data / split / c)
            for i in range(2):
                shutil.copy(osp.join(MINI, split, c, f'{i:04d}.jpg'), data / split / c)
    return data


def _run(tmp_path, data):
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'check_images.py'), DEMO,
                           '--data-root', str(data), '--workers', '2'],
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def test_check_images_lists_the_unreadable_one(tmp_path):
    data = _data(tmp_path)
    good = _run(tmp_path, data)
    assert good.returncode == 0, good.stderr[-2000:]
    assert good.stdout.strip().splitlines()[-1] == '40 images read, 0 unreadable.'
    bad = data / 'test' / 'cat' / '0001.jpg'
    bad.write_bytes(b'\xff\xd8 truncated')  # a JPEG header and nothing after it
    r = _run(tmp_path, data)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == '40 images read, 1 unreadable.'
    assert str(bad) in lines[-2] and 'corrupt or not an image' in lines[-2]
