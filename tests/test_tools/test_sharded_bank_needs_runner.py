"""A sharded bank under mmengine's plain Runner is refused before training, in one line: only
ShardedStateRunner gathers the bank into each checkpoint and keeps each rank's own rows."""
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.test_tools.launch_utils import clean_env, free_port, tiny_run_config


@pytest.mark.slow
def test_sharded_bank_with_plain_runner_is_one_error(tmp_path):
    cfg = tiny_run_config(tmp_path, str(tmp_path / 'records'))
    work = tmp_path / 'w'
    r = subprocess.run(
        ['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg, '2', '--work-dir', str(work),
         '--no-validate', '--cfg-options', 'model.memory_bank.sharded=True',
         'runner_type=Runner'],
        env=clean_env(PORT=free_port(), PYTHON=sys.executable), capture_output=True, text=True,
        timeout=600, cwd=str(tmp_path))
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith('error: ')]
    assert len(errors) == 1, r.stderr[-3000:]
    assert "runner_type='ShardedStateRunner'" in errors[0] and 'has Runner' in errors[0], errors[0]
    assert not list(work.glob('epoch_*.pth'))  # nothing that looks like a result
