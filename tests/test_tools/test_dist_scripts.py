"""tools/dist_*.sh: --help prints usage; a failure of N processes prints one short message, not
N tracebacks and the launcher's report (those stay in the folder the message names)."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPTS = {'dist_train.sh': 'CONFIG NUM_PROCS',
           'dist_linear_eval.sh': 'CONFIG CHECKPOINT NUM_PROCS',
           'dist_train_detection.sh': 'CONFIG NUM_PROCS'}


def _env(**kw):
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=ROOT, **kw)
    env.pop('MMMSF_ERROR_DIR', None)
    return env


@pytest.mark.parametrize('script', sorted(SCRIPTS))
@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_help_prints_usage(script, flag):
    p = subprocess.run(['bash', osp.join(ROOT, 'tools', script), flag], capture_output=True,
                       text=True, env=_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f'usage: bash tools/{script} {SCRIPTS[script]}')
    assert 'Traceback' not in p.stdout + p.stderr


def test_missing_arguments_print_usage():
    p = subprocess.run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh')], capture_output=True,
                       text=True, env=_env(), timeout=60)
    assert p.returncode == 2 and 'usage: bash tools/dist_train.sh' in p.stdout + p.stderr


def _port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


@pytest.mark.slow
def test_failure_of_two_processes_is_one_message(tmp_path):
    cfg = osp.join(ROOT, 'configs', 'demo', 'msf_r18_cifar10mini_ws.py')
    missing = tmp_path / 'no_imagenet_here'
    p = subprocess.run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), cfg, '2',
                        '--work-dir', str(tmp_path / 'w'), '--data-root', str(missing)],
                       capture_output=True, text=True, env=_env(PORT=_port()), cwd=str(tmp_path),
                       timeout=600)
    assert p.returncode != 0
    err = p.stderr.strip().splitlines()
    assert len(err) == 2, p.stderr
    assert err[0].startswith('error: rank ') and f"{str(missing)}" in err[0]
    assert 'does not exist' in err[0]
    assert 'Traceback' not in p.stdout + p.stderr and 'ChildFailedError' not in p.stderr
    folder = err[1].split(': ', 1)[1].rstrip(')')
    assert osp.isfile(osp.join(folder, 'launcher.log'))
    rank = err[0].split()[2].rstrip(':')  # 'error: rank R: ...'
    assert 'Traceback' in open(osp.join(folder, f'rank{rank}.traceback')).read()
    assert not list((tmp_path / 'w').rglob('*.pth'))
