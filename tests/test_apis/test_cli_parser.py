"""The options the tools share are declared once (mmmsf.apis.cli.default_argument_parser)."""
import os.path as osp
import subprocess
import sys

import pytest

from mmmsf.apis.cli import default_argument_parser
from tests.conftest import ROOT


def test_checkpoint_or_random_init_exactly_one(capsys):
    p = default_argument_parser('t', checkpoint=True)
    assert p.parse_args(['c.py', 'w.pth']).checkpoint == 'w.pth'
    assert p.parse_args(['c.py', '--random-init']).random_init
    for argv in (['c.py'], ['c.py', 'w.pth', '--random-init']):
        with pytest.raises(SystemExit) as e:
            p.parse_args(argv)
        assert e.value.code == 2
        assert 'give a CHECKPOINT or --random-init (not both)' in capsys.readouterr().err


def test_shared_options_and_their_values(capsys):
    p = default_argument_parser('t', work_dir=True, launcher=True, device=True)
    a = p.parse_args(['c.py', '--work-dir', 'w', '--data-root', 'd', '--launcher', 'pytorch',
                      '--local_rank', '3', '--device', 'cpu', '--cfg-options', 'model.topk=5',
                      'train_cfg.max_epochs=2'])
    assert (a.config, a.work_dir, a.data_root, a.launcher, a.local_rank, a.device) == \
        ('c.py', 'w', 'd', 'pytorch', 3, 'cpu')
    assert a.cfg_options == {'model.topk': 5, 'train_cfg.max_epochs': 2}
    with pytest.raises(SystemExit):
        p.parse_args(['c.py', '--cfg-options', 'model.topk'])
    assert "'model.topk' is not KEY=VALUE" in capsys.readouterr().err
    # what a tool did not ask for is not there
    bare = default_argument_parser('t', config=False, data_root=False)
    assert vars(bare.parse_args([])) == {'cfg_options': None}
    with pytest.raises(SystemExit):
        bare.parse_args(['--launcher', 'pytorch'])


@pytest.mark.parametrize('tool', ['train', 'linear_eval', 'knn_eval', 'transfer_eval',
                                  'test_detection'])
def test_tools_refuse_what_the_shared_parser_refuses(tool):
    argv, said = ['c.py', '--cfg-options', 'bad'], 'not KEY=VALUE'
    if tool != 'train':
        argv, said = ['c.py', 'w.pth', '--random-init'], 'not both'
    r = subprocess.run([sys.executable, osp.join(ROOT, 'tools', f'{tool}.py'), *argv],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2, r.stderr
    assert said in r.stderr
