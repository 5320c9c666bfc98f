"""tools/analysis/*.py run as ``python tools/analysis/<tool>.py`` from the repository root
without PYTHONPATH: with this checkout's mmmsf whether or not (or which) mmmsf is installed.
Python puts only the script's folder, tools/analysis, on the path."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmmsf.evaluation.results_io import results_path, write_results
from tests.conftest import ROOT

TOOLS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'tools/analysis/*.py')))
# Run at interpreter start (sitecustomize), after the site-packages' .pth files: mmmsf as if
# it were not installed (the editable install's finder dropped), or another mmmsf found first.
NOT_INSTALLED = '''
import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if 'mmmsf' not in getattr(f, '__module__', '') + repr(f)]
'''
OTHER_INSTALL = "raise ImportError('the mmmsf of another checkout')\n"


def _env(tmp_path, case: str) -> dict:
    site = tmp_path / case
    site.mkdir(exist_ok=True)
    (site / 'sitecustomize.py').write_text(NOT_INSTALLED)
    if case == 'other_install':
        (site / 'mmmsf').mkdir(exist_ok=True)
        (site / 'mmmsf' / '__init__.py').write_text(OTHER_INSTALL)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    # only the folder of the two stand-ins, never the checkout
    return dict(env, PYTHONPATH=str(site), OMP_NUM_THREADS='1')


@pytest.mark.parametrize('case', ['not_installed', 'other_install'])
def test_results_table_runs_from_the_root_without_pythonpath(tmp_path, case):
    env = _env(tmp_path, case)
    probe = subprocess.run([sys.executable, '-c', 'import mmmsf'], cwd=str(tmp_path), env=env,
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode != 0  # the stand-in works: no usable mmmsf outside the checkout
    tool = osp.join('tools', 'analysis', 'results_table.py')
    p = subprocess.run([sys.executable, tool, '--help'], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.startswith('usage: results_table.py'), p.stderr[-2000:]
    run = tmp_path / 'run'
    write_results(results_path(str(run), 'knn', 'epoch_2'), 'knn', {'1-NN': 31.25,
                                                                   '20-NN': 35.5},
                  checkpoint=f'{run}/epoch_2.pth')
    out = tmp_path / 'table.md'
    p = subprocess.run([sys.executable, tool, str(run), '--names', 'MSF w/s (mine)', '--out',
                        str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert '| MSF w/s (mine) | - | - | - | 31.2 | 35.5 | - |' in p.stdout.splitlines()
    assert out.read_text() == p.stdout


def test_the_plot_tools_put_the_checkout_first_too(tmp_path):
    """Every tool of tools/analysis starts alike; plot_tsne (numpy and mmmsf imports) runs."""
    boot = 'sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))'
    for tool in TOOLS:
        text = open(osp.join(ROOT, tool)).read()
        assert text.index(boot) < text.index('from mmmsf'), tool
    tool = osp.join('tools', 'analysis', 'plot_tsne.py')
    p = subprocess.run([sys.executable, tool, '--help'], cwd=ROOT,
                       env=_env(tmp_path, 'not_installed'), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith(f'usage: {osp.basename(tool)}')
