"""A multi-process run that fails in a data-loader worker (an unreadable image) prints one line
that names the rank, the real exception and the image -- not a line of the traceback."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from mmmsf.apis.cli import one_line
from tests.conftest import MINI, ROOT
from tests.test_tools.launch_utils import clean_env, free_port, tiny_run_config


def test_a_traceback_in_the_message_becomes_its_cause():
    msg = ('UnidentifiedImageError: Caught UnidentifiedImageError in DataLoader worker process 0.'
           '\nOriginal Traceback (most recent call last):\n  File "a.py", line 3, in load\n'
           '    img = Image.open(path)\n          ~~~~~~~~~~^^^^^^\n'
           "PIL.UnidentifiedImageError: cannot identify image file '/d/cat/7.jpg'\n")
    assert one_line(msg) == ("PIL.UnidentifiedImageError: cannot identify image file "
                             "'/d/cat/7.jpg' (UnidentifiedImageError: Caught "
                             'UnidentifiedImageError in DataLoader worker process 0.)')
    assert one_line('ValueError: one line') == 'ValueError: one line'


@pytest.mark.slow
def test_unreadable_image_in_a_worker_is_one_readable_line(tmp_path):
    data = tmp_path / 'data'
    for c in sorted(os.listdir(osp.join(MINI, 'train'))):
        os.makedirs(data / 'train' / c)
        for i in range(3):
            shutil.copy(osp.join(MINI, 'train', c, f'{i:04d}.jpg'), data / 'train' / c)
    bad = data / 'train' / sorted(os.listdir(data / 'train'))[4] / '0002.jpg'
    bad.write_bytes(b'not an image at all' * 10)
    cfg = tiny_run_config(tmp_path, str(tmp_path), per_class=3)
    r = subprocess.run(
        ['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg, '2', '--work-dir',
         str(tmp_path / 'w'), '--no-validate', '--cfg-options',
         f'train_dataloader.dataset.data_root={data}', 'train_dataloader.num_workers=1'],
        env=clean_env(PORT=free_port(), PYTHON=sys.executable), capture_output=True, text=True,
        timeout=600, cwd=str(tmp_path))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    error = [ln for ln in lines if ln.startswith('error: ')]
    assert len(error) == 1, r.stderr[-3000:]
    assert error[0].startswith('error: rank ') and str(bad) in error[0], error[0]
    assert 'DataLoader worker' in error[0] and '^^^' not in error[0]
