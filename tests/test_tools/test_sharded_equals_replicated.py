"""Through tools/dist_train.sh with 2 processes, a sharded memory bank trains exactly as the
replicated one: the same logged loss at every step, the same final bank and weights."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.test_tools.launch_utils import clean_env, free_port, tiny_run_config


def _run(tmp_path, sharded: bool) -> dict:
    out = tmp_path / f'records_{sharded}'
    out.mkdir()
    cfg = tiny_run_config(tmp_path, str(out), per_class=3, batch=3, bank=24, epochs=2)
    r = subprocess.run(['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg, '2', '--work-dir',
                        str(tmp_path / f'work_{sharded}'), '--no-validate', '--cfg-options',
                        f'model.memory_bank.sharded={sharded}', 'randomness.seed=0'],
                       env=clean_env(PORT=free_port(), PYTHON=sys.executable),
                       capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return {rank: torch.load(out / f'rank{rank}.pt', weights_only=False) for rank in (0, 1)}


@pytest.mark.slow
def test_sharded_bank_trains_as_the_replicated_one_through_dist_train(tmp_path):
    replicated, sharded = _run(tmp_path, False), _run(tmp_path, True)
    assert len(replicated[0]['losses']) == 10  # 2 epochs of 30 images, 6 a step
    assert sharded[0]['losses'] == replicated[0]['losses']
    # the sharded ranks' rows, in rank order, are the replicated bank
    whole = torch.cat([sharded[r]['bank'] for r in (0, 1)])
    assert sharded[0]['bank'].shape[0] == 12 and torch.equal(whole, replicated[0]['bank'])
    for k, v in replicated[0]['state'].items():
        assert torch.equal(sharded[0]['state'][k], v), k
