"""tools/knn_eval.py --random-init says where it wrote its JSON."""
import json
import os
import os.path as osp
import subprocess
import sys

from tests.conftest import MINI, ROOT


def test_random_init_prints_where_its_json_went(tmp_path):
    for split in ('train', 'test'):
        lines = [f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(osp.join(MINI, split)))
                 for i in range(3)]
        (tmp_path / f'{split}.txt').write_text('\n'.join(lines) + '\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'knn_eval.py'),
         osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py'), '--random-init',
         '--data-root', MINI, '--cfg-options', 'model.backbone.base_channels=8',
         'model.neck.in_channels=64',
         f'knn_train_dataloader.dataset.ann_file={tmp_path / "train.txt"}',
         f'knn_test_dataloader.dataset.ann_file={tmp_path / "test.txt"}'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    path = str(tmp_path / 'work_dirs' / 'eval' / 'knn_random_init.json')
    assert last == f'written to {path}'
    assert json.load(open(path))['kind'] == 'knn'
