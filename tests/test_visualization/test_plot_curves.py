"""tools/analysis/plot_curves.py: per-epoch loss, purity, online kNN, lr and collapse monitor of
several runs in one PNG; the plotted points are the logged values (per-epoch means)."""
import glob
import json
import os.path as osp
import runpy
import sys
from collections import defaultdict

import numpy as np
import pytest
import torch

from mmmsf.apis import train
from mmmsf.visualization.training_curves import PANELS, draw_training_curves
from tests.conftest import ROOT
from tests.test_evaluation.test_online_knn import run_cfg


def logged_per_epoch(work_dir):
    """Straight from scalars.json: {key: {epoch: mean}} for training, {key: {epoch: v}} for kNN."""
    sums = defaultdict(lambda: defaultdict(list))
    val = defaultdict(dict)
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        for line in open(path):
            r = json.loads(line)
            if 'loss' in r:
                for k in ('loss', 'purity', 'lr', 'target_std'):
                    sums[k][r['epoch']].append(r[k])
            elif 'knn/top1@1' in r:
                val['1-NN'][r['step']] = r['knn/top1@1']
                val['20-NN'][r['step']] = r['knn/top1@20']
    out = {k: {e: float(np.mean(v)) for e, v in d.items()} for k, d in sums.items()}
    out['purity'] = {e: 100 * v for e, v in out['purity'].items()}
    out.update(val)
    return out


@pytest.mark.slow
def test_plotted_curves_are_the_logged_values_of_each_run(tmp_path, monkeypatch, capsys):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = []
    for name, lr in (('lr05', 0.05), ('lr2', 0.2)):
        runs.append(str(tmp_path / name))
        train(run_cfg(tmp_path, tmp_path / name, epochs=2, **{'optim_wrapper.optimizer.lr': lr}))
    torch.set_num_threads(n)

    out = tmp_path / 'curves.png'
    monkeypatch.setattr(sys, 'argv', ['plot_curves.py', *runs, '--out', str(out)])
    runpy.run_path(osp.join(ROOT, 'tools/analysis/plot_curves.py'), run_name='__main__')
    printed = capsys.readouterr().out
    assert f'wrote {out}' in printed and 'lr05:' in printed and 'lr2:' in printed
    assert out.stat().st_size > 10000 and out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    fig, data = draw_training_curves(runs)
    keys_of_panel = [[key for key, _, _ in curves] for _, _, curves in PANELS]
    for ax, keys in zip(fig.axes, keys_of_panel):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        for run in runs:
            label = osp.basename(run)
            ref = logged_per_epoch(run)
            for key in keys:
                ln = lines[label if len(keys) == 1 else f'{label} {key}']
                want = ref[key]
                assert list(ln.get_xdata()) == sorted(want), (key, ln.get_xdata())
                np.testing.assert_allclose(ln.get_ydata(), [want[e] for e in sorted(want)],
                                           rtol=1e-12, err_msg=f'{label} {key}')
    # the two runs differ where they should: the learning rate
    assert data['lr2']['lr'][1][0] == pytest.approx(4 * data['lr05']['lr'][1][0])
    assert list(data['lr05']['1-NN'][0]) == [1, 2]  # one kNN point per epoch
