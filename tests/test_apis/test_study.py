"""The fidelity-study driver end to end in --quick mode (every method, tiny budget)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmmsf.apis.study import STUDY_RUNS
from mmmsf.apis.study_report import study_table
from tests.conftest import ROOT


QUICK_METHODS = ['random init', 'BYOL-asym s/s (k=1)', 'MSF w/s', 'CMSF-2Q', 'CMSF-KM',
                 'CMSF semi-sup. 10%', 'same view to both (MSF k=5)']


@pytest.mark.slow
def test_study_quick_mode_end_to_end(tmp_path):
    """A representative method of each family (the rest differ only in config options)."""
    out = tmp_path / 'study'
    res = subprocess.run([sys.executable, 'tools/study.py', '--quick', '--out', str(out),
                          '--only'] + QUICK_METHODS,
                         cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.load(open(out / 'results.json'))
    names = {r['name'] for k, r in results.items() if not k.startswith('_')}
    assert names == set(QUICK_METHODS) and names <= {r['name'] for r in STUDY_RUNS}
    for key, rec in results.items():
        if key.startswith('_'):
            continue
        assert 0 <= rec['knn']['1-NN'] <= 100 and 0 <= rec['knn']['20-NN'] <= 100
        if rec['name'] != 'random init':
            assert len(rec['loss']) == 1 and len(rec['target_std']) == 1
    table = (out / 'table.md').read_text()
    # the table is generated from results.json, row by row
    assert study_table(results) in table
    for png in ('purity_k.png', 'purity_views.png', 'collapse.png'):
        assert (out / png).stat().st_size > 1000
    assert results['_budget']['epochs'] == 1
