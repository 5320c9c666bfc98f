"""tools/cifar_benchmark.py end to end on a few hundred real images, and the shipped backbone."""
import json
import os
import os.path as osp
import shutil

import pytest

from mmmsf.apis.cifar_benchmark import BENCHMARK_CONFIGS, config_stem, run_cifar_benchmark
from tests.conftest import MINI, ROOT


def _small_folder(root, per_class_train=20, per_class_test=10):
    """An ImageFolder of the first images of each class of the bundled set."""
    for split, n in (('train', per_class_train), ('test', per_class_test)):
        for c in sorted(os.listdir(osp.join(MINI, split))):
            os.makedirs(osp.join(root, split, c))
            for i in range(n):
                shutil.copy(osp.join(MINI, split, c, f'{i:04d}.jpg'), osp.join(root, split, c))
    return str(root)


OPTIONS = {'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
           'train_dataloader.batch_size': 32, 'train_dataloader.num_workers': 0,
           'train_dataloader.persistent_workers': False, 'model.memory_bank.size': 256,
           'default_hooks.logger.interval': 1, 'default_hooks.checkpoint.interval': 1}


@pytest.mark.slow
def test_benchmark_end_to_end_and_deterministic(tmp_path):
    data = _small_folder(tmp_path / 'data')
    pages = []
    for run in ('a', 'b'):
        work = tmp_path / run
        page = str(work / 'page' / 'cifar_hour.md')
        os.makedirs(osp.dirname(page))
        readme = work / 'README.md'
        readme.write_text('x\n<!-- cifar-hour-table:start -->\nold\n<!-- cifar-hour-table:end -->\n')
        res = run_cifar_benchmark(BENCHMARK_CONFIGS, (0, ), data, str(work / 'runs'), page,
                                  str(work / 'ckpt'), str(readme), dict(OPTIONS))
        msf, byol = (res[f'{config_stem(c)}|seed0'] for c in BENCHMARK_CONFIGS)
        assert msf['num_images'] == dict(train=200, test=100)
        assert msf['images_seen'] == 6 * 32  # one epoch: 200 // 32 steps of 32
        for r in (msf, byol):
            assert set(r['accuracy']) == {'trained', 'random', 'pixels'}
            for b in ('random', 'pixels'):
                g = r['gain'][b]['20-NN']
                assert g['low'] <= g['gain'] <= g['high'] and g['num_images'] == 100
        summary = json.load(open(osp.splitext(page)[0] + '.json'))
        cmp = summary['first_minus_second']['0']['20-NN']
        assert cmp['gain'] == pytest.approx(msf['accuracy']['trained']['20-NN']
                                            - byol['accuracy']['trained']['20-NN'])
        text = open(page).read()
        assert 'raw pixels' in text and 'random init' in text and '[' in text
        assert osp.isfile(osp.splitext(page)[0] + '_curves.png')
        ckpt = work / 'ckpt' / f'{config_stem(BENCHMARK_CONFIGS[0])}.pth'
        assert summary['export']['path'] == str(ckpt) and ckpt.stat().st_size < 5 * 2**20
        assert 'old' not in readme.read_text() and 'gain over raw pixels' in readme.read_text()
        pages.append((summary['runs'], [r['correct'] for r in (msf, byol)]))
        # a second call finds every run done: nothing is trained again
        again = run_cifar_benchmark(BENCHMARK_CONFIGS, (0, ), data, str(work / 'runs'), page,
                                    None, None, dict(OPTIONS))
        assert again[f'{config_stem(BENCHMARK_CONFIGS[0])}|seed0']['seconds'] == msf['seconds']
    (runs_a, correct_a), (runs_b, correct_b) = pages
    assert correct_a == correct_b
    for key in runs_a:
        assert runs_a[key]['accuracy'] == runs_b[key]['accuracy']
        assert runs_a[key]['gain'] == runs_b[key]['gain']


def test_shipped_backbone_scores_what_its_page_states():
    """checkpoints/<config stem>.pth: weights-only, backbone only, and tools/knn_eval.py's
    number on the bundled images is the one docs/benchmarks/cifar_hour.json states."""
    from mmmsf.apis import knn_from_config, load_config
    from mmmsf.utils.checkpoint import safe_load
    summary = json.load(open(osp.join(ROOT, 'docs', 'benchmarks', 'cifar_hour.json')))
    export = summary['export']
    ckpt = osp.join(ROOT, export['path'])
    assert osp.basename(ckpt) == config_stem(export['config']) + '.pth'
    assert osp.getsize(ckpt) <= 5 * 2**20
    state = safe_load(ckpt)['state_dict']
    assert state and all(k.startswith('backbone.') for k in state)
    got = knn_from_config(load_config(osp.join(ROOT, export['config'])), ckpt, device='cpu')
    assert got == pytest.approx(export['bundled_knn'], abs=1e-9)


def _fake_run(config: str, seed: int, trained: float, low: float) -> dict:
    """A finished run's record as benchmark_run stores it (numbers chosen by the test)."""
    acc = {'1-NN': trained - 4, '20-NN': trained}
    return dict(config=config, seed=seed, data_root='d', steps=10, images_seen=1280,
                work_dir=f'/nonexistent/{seed}',
                num_images=dict(train=100, test=50), seconds=dict(train=60.0 * (seed + 1)),
                accuracy=dict(trained=acc, random={'1-NN': 20.0, '20-NN': 25.0},
                              pixels={'1-NN': 30.0, '20-NN': 35.0}),
                gain={b: {m: dict(gain=acc[m] - 35.0 + (5 if m == '1-NN' else 0),
                                  low=low, high=acc[m] - 30.0) for m in acc}
                      for b in ('random', 'pixels')},
                correct=dict(trained={m: [1, 0] * 25 for m in acc}))


def test_several_seeds_give_one_spread_row_per_config():
    from mmmsf.apis.cifar_benchmark import format_page, over_seeds, readme_table, run_key
    a, b = BENCHMARK_CONFIGS[:2]
    results = {run_key(a, 0): _fake_run(a, 0, 50.0, 7.5), run_key(a, 1): _fake_run(a, 1, 48.0, 5.0),
               run_key(b, 0): _fake_run(b, 0, 54.0, 12.0)}
    spread = over_seeds(results, [a, b], [0, 1])
    assert list(spread) == [config_stem(a)]  # b has one seed: no spread
    s = spread[config_stem(a)]
    assert s['seeds'] == [0, 1] and s['trained']['20-NN']['mean'] == pytest.approx(49.0)
    assert s['trained']['20-NN']['std'] == pytest.approx(2 ** 0.5)  # sample std of 50, 48
    assert s['gain_pixels']['20-NN']['mean'] == pytest.approx(14.0)
    assert s['lowest_pixels']['20-NN'] == 5.0
    table = readme_table(results, [a, b], [0, 1], spread, 'page.md')
    rows = [ln for ln in table.splitlines() if ln.startswith('| `')]
    assert len(rows) == 2  # one spread row for a, the single-seed row for b
    assert '(2 seeds, 2 min of steps each) | 45.0 ± 1.4 | 49.0 ± 1.4 | +14.0 ± 1.4 (lowest 95% bound ' \
        '+5.0) |' in rows[0] and '(seed 0, 1 min of steps)' in rows[1]
    page = format_page(results, [a, b], [0, 1], comparison={}, spread=spread)
    assert '49.0 ± 1.4 (48.0 to 50.0)' in page and '| 0, 1 |' in page


def test_step_minutes_count_every_attempt_of_a_resumed_run(tmp_path):
    from mmmsf.apis.cifar_benchmark import same_data_root, step_minutes
    for stamp, entries in (('20260101_000000', [(50, 0.6), (100, 0.6), (150, 0.6)]),
                           ('20260101_010000', [(150, 1.2), (200, 1.2)]),  # resumed at 100
                           ('20260101_020000', [])):  # scored again: no step
        vis = tmp_path / stamp / 'vis_data'
        vis.mkdir(parents=True)
        lines = [json.dumps(dict(step=s, lr=0.1, time=t)) for s, t in entries]
        lines.append(json.dumps({'step': 1, 'knn/top1@1': 10.0, 'time': 99.0}))  # validation
        (vis / 'scalars.json').write_text('\n'.join(lines) + '\n')
    record = dict(work_dir=str(tmp_path), seconds=dict(train=1.0))
    # 50 x 0.6 + 50 x 0.6 + 50 x 1.2 (the later attempt's step 150) + 50 x 1.2
    assert step_minutes(record) == pytest.approx((30 + 30 + 60 + 60) / 60)
    assert step_minutes(dict(work_dir=str(tmp_path / 'none'), seconds=dict(train=120.0))) == 2.0
    assert same_data_root(str(tmp_path), str(tmp_path / 'x' / '..'))
    assert not same_data_root(str(tmp_path), str(tmp_path / 'x')) and same_data_root(None, None)
