"""Online kNN in a real 2-process training (tools/dist_train.sh) is tools/knn_eval.py's number
for the checkpoint of each epoch, and a run resumed from a checkpoint logs the same numbers as
the uninterrupted one: every process validates with rank 0's BatchNorm statistics, the ones the
checkpoint holds."""
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from mmmsf.apis import load_config
from mmmsf.apis.evaluate import knn_from_config
from mmmsf.evaluation.results_io import read_results
from tests.conftest import MINI, ROOT
from tests.test_evaluation.test_online_knn import DEMO, knn_opts, model_opts, write_list
from tests.test_tools.launch_utils import clean_env, free_port

EPOCHS = 3


def _config(tmp_path) -> str:
    opts = dict(model_opts(), **knn_opts(tmp_path))
    opts.update({
        'train_dataloader.batch_size': 8, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.ann_file': write_list(tmp_path / 'train.txt', 'train', 8),
        'train_cfg.max_epochs': EPOCHS, 'train_cfg.val_interval': 1,
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=EPOCHS, by_epoch=True,
                                 begin=0, end=EPOCHS)],
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=1, max_keep_ckpts=10),
    })
    cfg = load_config(DEMO, opts, data_root=MINI)
    path = str(tmp_path / 'ddp_knn.py')
    cfg.dump(path)
    return path


def _launch(tmp_path, cfg: str, work, *options) -> None:
    env = clean_env(PORT=free_port(), PYTHON=sys.executable)
    r = subprocess.run(['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg, '2', '--work-dir',
                        str(work), *options], env=env, capture_output=True, text=True,
                       timeout=900, cwd=str(tmp_path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]


def _history(work) -> dict:
    res = read_results(osp.join(str(work), 'eval', 'knn.json'))
    return {h['epoch']: (h['1-NN'], h['20-NN']) for h in res['history']}


@pytest.mark.slow
def test_two_process_online_knn_is_the_checkpoints_and_survives_a_resume(tmp_path):
    cfg = _config(tmp_path)
    work = tmp_path / 'run'
    _launch(tmp_path, cfg, work)
    online = _history(work)
    assert sorted(online) == list(range(1, EPOCHS + 1))
    offline_cfg = load_config(cfg)
    for epoch, numbers in online.items():
        res = knn_from_config(offline_cfg, str(work / f'epoch_{epoch}.pth'), device='cpu')
        assert (res['1-NN'], res['20-NN']) == numbers, epoch
    # resumed from the epoch-1 checkpoint in a fresh work dir: the same numbers afterwards
    cut = tmp_path / 'resumed'
    cut.mkdir()
    shutil.copy(work / 'epoch_1.pth', cut / 'epoch_1.pth')
    _launch(tmp_path, cfg, cut, '--resume', str(cut / 'epoch_1.pth'))
    resumed = _history(cut)
    assert {e: resumed[e] for e in range(2, EPOCHS + 1)} == \
        {e: online[e] for e in range(2, EPOCHS + 1)}
