"""The light install: detection tools stop with one line; setup_env.sh's options."""
import glob
import hashlib
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

NO_DETECTION = '''
import runpy, sys
for name in ('mmdet', 'mmcv._ext', 'mmcv.ops'):  # as on the light install: not importable
    sys.modules[name] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


@pytest.mark.parametrize('tool, args', [
    ('tools/test_detection.py',
     ['configs/benchmarks/detection/faster-rcnn_r18-c4_tiny-voc_cpu.py', '--random-init']),
    ('tools/train_detection.py',
     ['configs/benchmarks/detection/faster-rcnn_r18-c4_tiny-voc_cpu.py', '--scratch']),
    ('tools/data/make_tiny_voc.py', []),
])
def test_detection_tool_without_the_stack_says_how_to_build_it(tool, args):
    out = subprocess.run([sys.executable, '-c', NO_DETECTION, tool] + args, cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert 'bash tools/setup_env.sh --full' in lines[0]
    assert "mmcv's compiled ops" in lines[0] and 'mmdet' in lines[0]
    assert out.stdout == ''


HELP_EACH = NO_DETECTION.split('sys.argv')[0] + '''
for tool in sys.argv[1:]:  # each tool's --help, in turn, in this one interpreter
    sys.argv = [tool, '--help']
    try:
        runpy.run_path(tool, run_name='__main__')
    except SystemExit as e:
        print(f'== {tool} exit {e.code}', flush=True)
'''


def test_detection_tools_help_works_without_the_stack():
    """``--help`` needs no mmdet: it is imported after the arguments are read (was: exit 1)."""
    tools = ['tools/test_detection.py', 'tools/train_detection.py', 'tools/data/make_tiny_voc.py']
    out = subprocess.run([sys.executable, '-c', HELP_EACH, *tools], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0 and out.stderr == '', out.stderr[-2000:]
    parts = out.stdout.split('== ')
    assert [p.splitlines()[0] for p in parts[1:]] == [f'{t} exit 0' for t in tools]
    for tool, text in zip(tools, [parts[0]] + [p.split('\n', 1)[1] for p in parts[1:-1]]):
        assert text.startswith(f'usage: {osp.basename(tool)}'), text


LIGHT_INIT = NO_DETECTION.split('sys.argv')[0] + '''
import torch
from mmengine.registry import init_default_scope
init_default_scope('mmmsf')
from mmmsf.registry import MODELS
from tests.conftest import tiny_msf_cfg
torch.manual_seed(0)
cfg = tiny_msf_cfg(width=4)
cfg['backbone']['init_cfg'] = dict(type='Constant', layer='Conv2d', val=0.5)
model = MODELS.build(cfg)
model.init_weights()
print('conv1', float(model.backbone.conv1.weight.mean()))
try:
    MODELS.build(dict(cfg, backbone=dict(cfg['backbone'], init_cfg=dict(
        type='mmmsf.PretrainedResNet', checkpoint='x.pth')))).init_weights()
except ImportError as e:
    print('detection init:', e)
'''


def test_weight_initialisers_of_the_mmmsf_scope_work_without_the_stack():
    """An ``init_cfg`` of mmengine's initialisers in the mmmsf scope on the light install (was:
    the detection ImportError, as WEIGHT_INITIALIZERS' location is mmmsf.detection); the
    detection initialiser itself says how to install it."""
    out = subprocess.run([sys.executable, '-c', LIGHT_INIT], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert 'conv1 0.5' in lines, out.stdout  # the Constant initialiser ran
    said = [line for line in lines if line.startswith('detection init:')]
    assert len(said) == 1 and "'mmmsf.PretrainedResNet'" in said[0] \
        and 'bash tools/setup_env.sh --full' in said[0], out.stdout


def test_detection_package_import_names_the_install_command():
    script = ("import sys\nsys.modules['mmcv._ext'] = None\n"
              "try:\n    import mmmsf.detection\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert "needs mmcv's compiled ops" in out.stdout
    assert 'bash tools/setup_env.sh --full' in out.stdout


def test_detection_stack_check_agrees_with_the_environment():
    import importlib.util

    from mmmsf.utils import detection_stack_missing
    have = (importlib.util.find_spec('mmdet') is not None
            and importlib.util.find_spec('mmcv._ext') is not None)
    assert (detection_stack_missing() is None) == have


def test_setup_env_rejects_an_unknown_option(tmp_path):
    env = dict(os.environ, MMMSF_VENV=str(tmp_path / 'venv'), MMMSF_CACHE=str(tmp_path / 'c'))
    out = subprocess.run(['bash', 'tools/setup_env.sh', '--ful'], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 2
    assert "unknown option '--ful'" in out.stderr and '--full' in out.stderr
    assert not (tmp_path / 'venv').exists()  # nothing was installed


def test_setup_env_with_a_current_stamp_installs_nothing(tmp_path):
    """A venv whose stamp matches the requirement files is used as it is (the second run)."""
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    env = dict(os.environ, MMMSF_VENV=str(venv), MMMSF_CACHE=str(tmp_path / 'c'))
    # the stamp as setup_env.sh computes it: requirement files, setup.cfg, CUDA or not
    files = sorted(glob.glob(osp.join(ROOT, 'requirements', '*.txt'))) + [
        osp.join(ROOT, 'setup.cfg')]
    cuda = shutil.which('nvidia-smi') is not None and subprocess.run(
        ['nvidia-smi', '-L'], capture_output=True).returncode == 0
    blob = b''.join(open(f, 'rb').read() for f in files) + f'cuda={int(cuda)}\n'.encode()
    stamp = hashlib.sha256(blob).hexdigest()
    assert len(stamp) == 64
    for mode in ('light', 'full'):
        (venv / '.mmmsf-stamp').write_text(f'{stamp} {mode}\n')
        # no flag: whatever is there; --light on a light venv; a light venv asked for nothing
        flag = '' if mode == 'full' else '--light'
        out = subprocess.run(['bash', '-c', f'source tools/setup_env.sh "{flag}" && echo "$PATH"'],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(str(venv / 'bin')) and out.stderr == ''


PIP_STUB = r'''#!/usr/bin/env bash
# Stands in for the venv's pip: keeps the installed distributions in $STUB_STATE, logs calls,
# and flags an install of one mmcv distribution over the other (they share the mmcv folder).
echo "pip $*" >> "$STUB_LOG"
has() { grep -qx "$1" "$STUB_STATE"; }
add() { has "$1" || echo "$1" >> "$STUB_STATE"; }
case "$1" in
  show) has "${@: -1}"; exit $? ;;
  uninstall) for p in "${@:2}"; do [[ $p == -* ]] || sed -i "/^$p\$/d" "$STUB_STATE"; done ;;
  install)
    if [[ "$*" == *mmcv-lite.txt* ]]; then has mmcv && echo CLASH >> "$STUB_LOG"; add mmcv-lite; fi
    if [[ "$*" == *mmcv-2.1.0-fake.whl* ]]; then has mmcv-lite && echo CLASH >> "$STUB_LOG"; add mmcv; fi
    if [[ "$*" == *detection.txt* ]]; then add mmdet; fi ;;
esac
exit 0
'''


def test_light_full_light_transitions_never_install_one_mmcv_over_the_other(tmp_path):
    """setup_env.sh's decisions, with a stub pip: what is removed before what is installed."""
    venv, cache = tmp_path / 'venv', tmp_path / 'cache'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'pip').write_text(PIP_STUB)
    (venv / 'bin' / 'python').write_text('#!/usr/bin/env bash\nexit 0\n')
    for f in ('pip', 'python'):
        (venv / 'bin' / f).chmod(0o755)
    wheels = cache / 'wheels' / 'mmcv-2.1.0-torch2.14.1-cpu'
    state, log = tmp_path / 'state', tmp_path / 'log'
    state.write_text('')
    env = dict(os.environ, MMMSF_VENV=str(venv), MMMSF_CACHE=str(cache),
               STUB_STATE=str(state), STUB_LOG=str(log), MMMSF_PYTHON=sys.executable)

    def setup(flag):
        log.write_text('')
        out = subprocess.run(['bash', 'tools/setup_env.sh'] + ([flag] if flag else []),
                             cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert 'CLASH' not in log.read_text(), log.read_text()
        mode = (venv / '.mmmsf-stamp').read_text().split()[1]
        return set(state.read_text().split()), mode

    assert setup('') == ({'mmcv-lite'}, 'light')              # the demo on a bare venv
    wheels.mkdir(parents=True)                               # as if built by --full
    (wheels / 'mmcv-2.1.0-fake.whl').write_text('')
    assert setup('--full') == ({'mmcv', 'mmdet'}, 'full')     # the test suite
    assert setup('') == ({'mmcv', 'mmdet'}, 'full')           # the demo keeps the full install
    assert log.read_text() == ''                             # ... and costs nothing
    assert setup('--light') == ({'mmcv-lite'}, 'light')       # back
    assert setup('--full') == ({'mmcv', 'mmdet'}, 'full')     # again, from the cached wheel
    # a changed requirement file on a full venv whose wheel is gone: the demo goes light
    # rather than compiling for 10-30 minutes
    (venv / '.mmmsf-stamp').write_text('0' * 64 + ' full\n')
    (wheels / 'mmcv-2.1.0-fake.whl').unlink()
    assert setup('') == ({'mmcv-lite'}, 'light')
