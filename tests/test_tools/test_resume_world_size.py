"""``--resume`` through the Runner on another world size: a sharded bank trained on 2 ranks,
checkpointed, resumed on 3 ranks (same global batch), re-sharded, and saved again whole."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.test_tools.launch_utils import clean_env, free_port, tiny_run_config

GLOBAL_BATCH, BANK = 12, 48  # 30 images, drop_last: 2 steps (24 slots) per epoch


def launch(tmp_path, cfg, nproc: int, work, *options):
    env = clean_env(PORT=free_port(), PYTHON=sys.executable)
    r = subprocess.run(['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg, str(nproc),
                        '--work-dir', str(work), '--no-validate', *options], env=env, capture_output=True,
                       text=True, timeout=600, cwd=str(tmp_path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]


@pytest.mark.slow
def test_resume_a_sharded_bank_on_another_world_size(tmp_path):
    out = tmp_path / 'records'
    out.mkdir()
    cfg = tiny_run_config(tmp_path, str(out), per_class=3, batch=GLOBAL_BATCH // 2, bank=BANK,
                          epochs=2)
    work = tmp_path / 'work'
    sharded = 'model.memory_bank.sharded=True'
    launch(tmp_path, cfg, 2, work, '--cfg-options', sharded, 'train_cfg.max_epochs=1')
    first = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)
    launch(tmp_path, cfg, 3, work, '--resume', str(work / 'epoch_1.pth'), '--cfg-options',
           sharded, f'train_dataloader.batch_size={GLOBAL_BATCH // 3}')
    second = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=False)
    a, b = first['state_dict'], second['state_dict']
    assert a['memory_bank.bank'].shape == b['memory_bank.bank'].shape == (BANK, 32)
    assert int(a['memory_bank.ptr']) == 24 and int(b['memory_bank.ptr']) == 0
    assert int(b['memory_bank.num_written']) == 48
    # slots 0..23 came from the 2-rank run: loaded, re-sharded over 3 ranks, saved whole again
    for key in ('memory_bank.bank', 'memory_bank.sample_idx', 'memory_bank.labels'):
        assert torch.equal(a[key][:24], b[key][:24]), key
    assert bool((b['memory_bank.sample_idx'][24:] >= 0).all())  # the 3-rank epoch wrote 24..47
    records = [torch.load(out / f'rank{r}.pt', weights_only=False) for r in range(3)]
    assert [r['world'] for r in records] == [3, 3, 3]
    assert sum(r['bank'].shape[0] for r in records) == BANK  # 16 slots on each rank
    assert torch.equal(torch.cat([r['bank'] for r in records]), b['memory_bank.bank'])
