"""The CPU-hour CIFAR benchmark: does mean shift learn, and does k > 1 beat BYOL-asym (k = 1)?

Each benchmark config is pre-trained (once per seed, resumable) and its backbone is scored with
the demo's kNN protocol (:func:`mmmsf.apis.demo.run_demo`): unit-norm features, exact search,
unweighted vote, memory = the training images, queries = the test images; against the randomly
initialised backbone and the raw pixels, with 95% paired-bootstrap intervals over the test
images. The first two configs are also compared with each other (MSF k = 5 vs BYOL-asym k = 1,
the paper's Table 2 ordering), seed by seed.

Everything is kept in ``<work_dir>/results.json`` (keyed ``<config stem>|seed<s>``), so an
interrupted benchmark continues where it stopped: finished runs are not trained again, an
interrupted one resumes from its last checkpoint. From that file the results page (a Markdown
table and the training-curve image) is written, the first config's first-seed backbone is
exported to ``checkpoints/<config stem>.pth`` and scored on the bundled images, and the README's
table between ``<!-- cifar-hour-table:start -->`` and ``<!-- cifar-hour-table:end -->`` is
replaced.
"""
import fcntl
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

from mmmsf.evaluation import paired_bootstrap
from mmmsf.utils.io import atomic_write_json
from mmmsf.visualization.training_curves import plot_training_curves

from .config import load_config
from .convert import export_backbone
from .demo import BASELINES, NAMES, run_demo, seed_spread
from .evaluate import knn_from_config

BENCHMARK_CONFIGS = ('configs/cifar/msf_r18w16_cpu1h_cifar10-20k.py',
                     'configs/cifar/byol-asym_r18w16_cpu1h_cifar10-20k.py')
README_MARKERS = ('<!-- cifar-hour-table:start -->', '<!-- cifar-hour-table:end -->')


def config_stem(config: str) -> str:
    """The config's file name without ``.py`` (the name of its exported checkpoint)."""
    return osp.splitext(osp.basename(config))[0]


def run_key(config: str, seed: int) -> str:
    return f'{config_stem(config)}|seed{seed}'


def load_results(path: str) -> Dict:
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def save_results(results: Dict, path: str) -> None:
    """Write atomically: an interrupted write never leaves a truncated results file."""
    atomic_write_json(path, results, indent=1)


def add_result(path: str, key: str, record: Dict) -> Dict:
    """Add one run to ``path`` under a file lock, re-reading it first: several benchmark
    processes (one per config or seed, e.g. one per core) may share one work dir."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load_results(path)
        results[key] = record
        save_results(results, path)
    return results


def step_minutes(record: Dict) -> float:
    """Minutes of training steps of a run, from mmengine's logs in its work dir: each logged
    iteration's mean step time times the steps since the previous logged one, over every
    attempt of a resumed run (where attempts overlap, the later one counts). Validation and
    checkpoint writing are left out, and the time of an earlier attempt is kept when the run
    is resumed or scored again. Without logs: the wall time of the last attempt."""
    times: Dict[int, float] = {}
    pattern = osp.join(glob.escape(record['work_dir']), '*', 'vis_data', 'scalars.json')
    for path in sorted(glob.glob(pattern)):  # timestamp folders: oldest first
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if 'lr' in entry and 'time' in entry:  # a training iteration's entry
                    times[int(entry['step'])] = float(entry['time'])
    if not times:
        return record['seconds']['train'] / 60
    total, previous = 0.0, 0
    for step in sorted(times):
        total += times[step] * (step - previous)
        previous = step
    return total / 60


def same_data_root(a: Optional[str], b: Optional[str]) -> bool:
    """Two spellings of one data root (relative or absolute, links) are the same."""
    return a == b or (a is not None and b is not None
                      and osp.realpath(a) == osp.realpath(b))


def benchmark_run(config: str, seed: int, work_dir: str, data_root: Optional[str],
                  cfg_options: Optional[dict] = None) -> Dict:
    """Train one config / seed (resuming its work dir if interrupted) and score it."""
    res = run_demo(config, work_dir, data_root, cfg_options, seed=seed, resume='if-any')
    return dict(
        config=config, seed=seed, data_root=data_root, work_dir=work_dir,
        accuracy=res['accuracy'], gain=res['gain'],
        correct={name: {m: [int(x) for x in c.tolist()] for m, c in per.items()}
                 for name, per in res['correct'].items()},
        num_images=res['num_images'], steps=res['steps'],
        images_seen=res['steps'] * res['batch_size'], checkpoint=res['checkpoint'],
        seconds=res['seconds'])


def compare(a: Dict, b: Dict, num_bootstrap: int = 10000) -> Dict[str, Dict]:
    """Paired bootstrap of run ``a``'s trained backbone over run ``b``'s, per metric."""
    if a['num_images'] != b['num_images']:
        raise ValueError(f"runs {a['config']} and {b['config']} were scored on other images "
                         f"({a['num_images']} vs {b['num_images']}): run both on one data root.")
    return {m: paired_bootstrap(a['correct']['trained'][m], b['correct']['trained'][m],
                                num_samples=num_bootstrap, seed=a['seed'])
            for m in a['correct']['trained']}


def bundled_knn(config: str, checkpoint: str) -> Dict[str, float]:
    """kNN of ``checkpoint`` with the config's own data root (the bundled images on a fresh
    clone): the number a user reproduces with ``tools/knn_eval.py CONFIG CHECKPOINT``."""
    return knn_from_config(load_config(config), checkpoint, device='cpu')


def _cell(g: Dict) -> str:
    return f"{g['gain']:+.1f} [{g['low']:+.1f}, {g['high']:+.1f}]"


def finished_runs(results: Dict, configs: Sequence[str], seeds: Sequence[int]) -> List[Dict]:
    """The records of the finished runs, configs outer, seeds inner."""
    return [results[run_key(c, s)] for c in configs for s in seeds if run_key(c, s) in results]


def over_seeds(results: Dict, configs: Sequence[str],
               seeds: Sequence[int]) -> Dict[str, Dict]:
    """Per config with two or more finished seeds: the seeds, the spread
    (:func:`~mmmsf.apis.demo.seed_spread`) of its kNN accuracies and of its gains over raw
    pixels, and the lowest 95% interval bound of those gains of any seed."""
    out = {}
    for c in configs:
        runs = finished_runs(results, [c], seeds)
        if len(runs) < 2:
            continue
        metrics = list(runs[0]['accuracy']['trained'])
        out[config_stem(c)] = dict(
            seeds=[r['seed'] for r in runs],
            step_minutes=seed_spread([step_minutes(r) for r in runs]),
            trained={m: seed_spread([r['accuracy']['trained'][m] for r in runs])
                     for m in metrics},
            gain_pixels={m: seed_spread([r['gain']['pixels'][m]['gain'] for r in runs])
                         for m in metrics},
            lowest_pixels={m: min(r['gain']['pixels'][m]['low'] for r in runs)
                           for m in metrics})
    return out


def _spread_cell(s: Dict, sign: str = '') -> str:
    return (f"{s['mean']:{sign}.1f} ± {s['std']:.1f} "
            f"({s['min']:{sign}.1f} to {s['max']:{sign}.1f})")


def compare_first_two(results: Dict, configs: Sequence[str],
                      seeds: Sequence[int]) -> Dict[str, Dict[str, Dict]]:
    """``configs[0]`` minus ``configs[1]`` for every seed both finished (keyed by the seed)."""
    if len(configs) < 2:
        return {}
    return {str(s): compare(results[run_key(configs[0], s)], results[run_key(configs[1], s)])
            for s in seeds if run_key(configs[0], s) in results
            and run_key(configs[1], s) in results}


def format_page(results: Dict, configs: Sequence[str], seeds: Sequence[int],
                comparison: Dict[str, Dict[str, Dict]], spread: Dict[str, Dict],
                curves: Optional[str] = None, machine: str = '') -> str:
    """The results page: per run the kNN table, gains with intervals, ``comparison``
    (:func:`compare_first_two`: the k = 5 vs k = 1 rows) and ``spread``
    (:func:`over_seeds`)."""
    runs = finished_runs(results, configs, seeds)
    if not runs:
        raise ValueError('no finished benchmark run to report.')
    metrics = list(runs[0]['accuracy']['trained'])
    n = runs[0]['num_images']
    lines = ['# The CPU-hour CIFAR benchmark', '',
             'Written by `python tools/cifar_benchmark.py` (do not edit by hand). kNN top-1 (%) of '
             'frozen, L2-normalised backbone features, unweighted vote; memory = the '
             f"{n['train']:,} training images, queries = the {n['test']:,} test images "
             f"(data root `{runs[0]['data_root'] or 'the config default'}`). Intervals: 95% "
             'paired bootstrap over the test images. Step min: minutes of training steps from '
             "the run's logs (online kNN validations and checkpoints not counted)."
             + (f' Machine: {machine}.' if machine else ''), '',
             '| run | seed | images seen | step min | ' + ' | '.join(metrics)
             + ' | ' + ' | '.join(f'gain over {NAMES[b]} ({m})' for b in BASELINES
                                  for m in metrics) + ' |',
             '|---|---|---|---|' + '---|' * (len(metrics) * (1 + len(BASELINES)))]
    base = runs[0]
    lines.append('| random init | | | | ' + ' | '.join(
        f"{base['accuracy']['random'][m]:.1f}" for m in metrics) + ' |' + ' |' * (
        len(metrics) * len(BASELINES)))
    lines.append('| raw pixels | | | | ' + ' | '.join(
        f"{base['accuracy']['pixels'][m]:.1f}" for m in metrics) + ' |' + ' |' * (
        len(metrics) * len(BASELINES)))
    for r in runs:
        lines.append(
            f"| `{config_stem(r['config'])}` | {r['seed']} | {r['images_seen']:,} | "
            f"{step_minutes(r):.1f} | "
            + ' | '.join(f"**{r['accuracy']['trained'][m]:.1f}**" for m in metrics) + ' | '
            + ' | '.join(_cell(r['gain'][b][m]) for b in BASELINES for m in metrics) + ' |')
    if comparison:
        lines += ['', f'`{config_stem(configs[0])}` minus `{config_stem(configs[1])}` '
                  '(same seed, same test images):', '',
                  '| seed | ' + ' | '.join(metrics) + ' |', '|---|' + '---|' * len(metrics)]
        for seed, cmp in comparison.items():
            lines.append(f'| {seed} | ' + ' | '.join(_cell(cmp[m]) for m in metrics) + ' |')
        if len(comparison) > 1:
            lines.append(f'| mean ± std ({len(comparison)} seeds) | ' + ' | '.join(
                _spread_cell(seed_spread([c[m]['gain'] for c in comparison.values()]), '+')
                for m in metrics) + ' |')
    if spread:
        lines += ['', 'Over seeds: mean ± sample std (min to max); the last columns: the lowest '
                  'lower bound of the 95% interval of any seed.', '',
                  '| run | seeds | ' + ' | '.join(metrics) + ' | '
                  + ' | '.join(f'gain over raw pixels ({m})' for m in metrics) + ' | '
                  + ' | '.join(f'lowest bound ({m})' for m in metrics) + ' |',
                  '|---|---|' + '---|' * (3 * len(metrics))]
        for stem, s in spread.items():
            lines.append(f"| `{stem}` | {', '.join(map(str, s['seeds']))} | "
                         + ' | '.join(_spread_cell(s['trained'][m]) for m in metrics) + ' | '
                         + ' | '.join(_spread_cell(s['gain_pixels'][m], '+') for m in metrics)
                         + ' | ' + ' | '.join(f"{s['lowest_pixels'][m]:+.1f}" for m in metrics)
                         + ' |')
    exported = results.get('_export')
    if exported:
        lines += ['', f"Shipped backbone: `{exported['path']}` ({exported['mbytes']:.1f} MB, "
                  f"weights-only; run `{config_stem(exported['config'])}` seed "
                  f"{exported['seed']}). On the bundled images (data/cifar10_mini, "
                  '3,000 / 1,000) `python tools/knn_eval.py '
                  f"{exported['config']} {exported['path']}` gives "
                  + ', '.join(f'{m} **{v:.1f}**' for m, v in exported['bundled_knn'].items())
                  + '.']
    if curves:
        lines += ['', f'![training curves]({osp.basename(curves)})']
    return '\n'.join(lines) + '\n'


def summary(results: Dict, configs: Sequence[str], seeds: Sequence[int],
            comparison: Dict[str, Dict[str, Dict]], spread: Dict[str, Dict],
            machine: str = '') -> Dict:
    """What the page states, as JSON (next to the page): per run the accuracies, gains and
    timings (no per-image vectors), the k = 5 vs k = 1 comparison and the shipped backbone."""
    keys = ('config', 'seed', 'data_root', 'accuracy', 'gain', 'num_images', 'steps',
            'images_seen', 'seconds')
    runs = {run_key(r['config'], r['seed']): {k: r[k] for k in keys}
            for r in finished_runs(results, configs, seeds)}
    out = dict(machine=machine, runs=runs, over_seeds=spread)
    if len(configs) >= 2:
        out['first_minus_second'] = comparison
    if '_export' in results:
        out['export'] = results['_export']
    return out


def readme_table(results: Dict, configs: Sequence[str], seeds: Sequence[int],
                 spread: Dict[str, Dict], page: str) -> str:
    """The short table the README quotes between its markers (``spread``: :func:`over_seeds`;
    one row per config with several seeds)."""
    runs = finished_runs(results, configs, seeds)
    metrics = list(runs[0]['accuracy']['trained'])
    base = runs[0]
    lines = ['| features | ' + ' | '.join(metrics) + ' | gain over raw pixels (20-NN) |',
             '|---|' + '---|' * (len(metrics) + 1),
             '| random init | ' + ' | '.join(f"{base['accuracy']['random'][m]:.1f}"
                                            for m in metrics) + ' | |',
             '| raw pixels | ' + ' | '.join(f"{base['accuracy']['pixels'][m]:.1f}"
                                           for m in metrics) + ' | |']
    m20 = metrics[-1]
    for stem, s in spread.items():  # one row per config run with several seeds
        lines.append(f"| `{stem}` ({len(s['seeds'])} seeds, "
                     f"{s['step_minutes']['mean']:.0f} min of steps each) | "
                     + ' | '.join(f"{s['trained'][m]['mean']:.1f} ± {s['trained'][m]['std']:.1f}"
                                  for m in metrics)
                     + f" | {s['gain_pixels'][m20]['mean']:+.1f} ± "
                     f"{s['gain_pixels'][m20]['std']:.1f} (lowest 95% bound "
                     f"{s['lowest_pixels'][m20]:+.1f}) |")
    for r in runs:
        if config_stem(r['config']) in spread:
            continue
        lines.append(f"| `{config_stem(r['config'])}` (seed {r['seed']}, "
                     f"{step_minutes(r):.0f} min of steps) | "
                     + ' | '.join(f"{r['accuracy']['trained'][m]:.1f}" for m in metrics)
                     + f" | {_cell(r['gain']['pixels'][m20])} |")
    lines += ['', f'Written by `python tools/cifar_benchmark.py`; details: [{page}]({page}).']
    return '\n'.join(lines)


def replace_between_markers(text: str, body: str, markers=README_MARKERS) -> str:
    start, end = markers
    pattern = re.compile(re.escape(start) + r'.*?' + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f'the README has no {start} ... {end} block to fill.')
    return pattern.sub(lambda _: f'{start}\n{body}\n{end}', text)


def run_cifar_benchmark(configs: Sequence[str] = BENCHMARK_CONFIGS, seeds: Sequence[int] = (0, ),
                        data_root: Optional[str] = None,
                        work_dir: str = 'work_dirs/cifar_benchmark',
                        page: Optional[str] = 'docs/benchmarks/cifar_hour.md',
                        checkpoint_dir: Optional[str] = 'checkpoints',
                        readme: Optional[str] = None, cfg_options: Optional[dict] = None,
                        machine: str = '') -> Dict:
    """Train and score every config x seed not yet in ``<work_dir>/results.json``, then write
    the page, the curve image, the exported backbone and the README's table.

    Returns the results dict (per-run records keyed ``<stem>|seed<s>``)."""
    if not configs or not seeds:
        raise ValueError('give at least one config and one seed.')
    path = osp.join(work_dir, 'results.json')
    results = load_results(path)
    for config in configs:
        for seed in seeds:
            key = run_key(config, seed)
            if key in results and same_data_root(results[key].get('data_root'), data_root):
                print(f'[cifar-benchmark] {key}: done earlier (kept in {path})', flush=True)
                continue
            print(f'[cifar-benchmark] {key}: training', flush=True)
            run_dir = osp.join(work_dir, config_stem(config), f'seed{seed}')
            record = benchmark_run(config, seed, run_dir, data_root, cfg_options)
            results = add_result(path, key, record)
    if checkpoint_dir:
        first = results[run_key(configs[0], seeds[0])]
        out = osp.join(checkpoint_dir, config_stem(configs[0]) + '.pth')
        export_backbone(first['checkpoint'], out,
                        meta=dict(config=configs[0], seed=seeds[0],
                                  accuracy=first['accuracy']['trained']))
        results['_export'] = dict(path=out, config=configs[0], seed=seeds[0],
                                  mbytes=osp.getsize(out) / 2**20,
                                  bundled_knn=bundled_knn(configs[0], out))
        save_results(results, path)
    curves = None
    if page:
        curves = osp.splitext(page)[0] + '_curves.png'
        dirs = [results[run_key(c, s)]['work_dir'] for c in configs for s in seeds]
        plot_training_curves(dirs, curves, [run_key(c, s) for c in configs for s in seeds])
        comparison = compare_first_two(results, configs, seeds)
        spread = over_seeds(results, configs, seeds)
        with open(page, 'w') as f:
            f.write(format_page(results, configs, seeds, comparison, spread, curves, machine))
        save_results(summary(results, configs, seeds, comparison, spread, machine),
                     osp.splitext(page)[0] + '.json')
        if readme:
            with open(readme) as f:
                text = f.read()
            rel = osp.relpath(page, osp.dirname(osp.abspath(readme)))
            with open(readme, 'w') as f:
                f.write(replace_between_markers(
                    text, readme_table(results, configs, seeds, spread, rel)))
    return results
