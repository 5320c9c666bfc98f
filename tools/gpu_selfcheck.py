"""The Python side of ``tools/gpu_selfcheck.sh``: check the plan of a dry run, report the
environment, and write ``summary.md`` / ``summary.json`` from the steps' results.

    python tools/gpu_selfcheck.py validate PLAN.tsv      # dry run: every step parses and is wired
    python tools/gpu_selfcheck.py env-report OUT.json    # versions, GPU, driver, CUDA runtimes
    python tools/gpu_selfcheck.py summarize DIR          # DIR/steps.jsonl + results -> summary
"""
import argparse
import contextlib
import importlib
import io
import json
import math
import os
import os.path as osp
import platform
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# What `pytest -m cuda` must run: one test (function name) per check the self-check promises.
REQUIRED_CUDA_TESTS = {
    'faiss-gpu = torch GPU = CPU search (indices, ties)':
        'test_faiss_and_torch_search_equal_the_cpu_reference_with_ties',
    'faiss-gpu orders ties inside the top-k by index, without fallback':
        'test_faiss_orders_ties_inside_the_top_k_by_index',
    'half-precision bank neighbours vs float32':
        'test_half_precision_bank_neighbours_against_float32',
    'half GEMM with float32 accumulation': 'test_gpu_half_gemm_accumulates_in_float32',
    'MSF / CMSF-KM step, float32 vs AMP': 'test_train_step_float32_vs_amp',
    'SyncBN target in a 1-process nccl group': 'test_syncbn_target_in_one_process_nccl_group',
    'embedding cache in pinned memory': 'test_cache_lives_in_pinned_host_memory_and_round_trips',
    'faiss-gpu k-means ids = CPU ids': 'test_faiss_gpu_kmeans_ids_equal_cpu_ids',
}


# ---------------------------------------------------------------------------------- validate
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    v = sub.add_parser('validate', help='check a dry run\'s plan (one step per line)')
    v.add_argument('plan')
    e = sub.add_parser('env-report', help='write the environment as JSON')
    e.add_argument('out')
    sub.add_parser('mmcv-ops-check', help='run two of mmcv\'s compiled ops on the GPU')
    sub.add_parser('missing-requirements',
                   help='print the requirements/ packages this interpreter cannot import '
                        '(torch, torchvision, numpy and setuptools are kept as they are)')
    s = sub.add_parser('summarize', help='write summary.md and summary.json')
    s.add_argument('dir')
    s.add_argument('--budget', type=float, default=None)
    return p


def _check_benchmark(script: str, args: List[str]) -> Optional[str]:
    """None if ``benchmarks/<script>`` exists and its own parser accepts ``args``."""
    path = osp.join(ROOT, script)
    if not osp.isfile(path):
        return f'{script} does not exist'
    name = osp.splitext(osp.basename(script))[0]
    try:
        module = importlib.import_module(f'benchmarks.{name}')
    except Exception as e:  # noqa: BLE001 -- report any import failure as the step's problem
        return f'{script} does not import: {type(e).__name__}: {e}'
    if not hasattr(module, 'parse_args') or not hasattr(module, 'main'):
        return f'{script} has no parse_args()/main()'
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            ns = module.parse_args(args)
    except SystemExit as e:
        msg = err.getvalue().strip().splitlines()
        return f'{script} rejects its arguments ({" ".join(args)}): ' + \
            (msg[-1] if msg else f'exit {e.code}')
    if getattr(ns, 'device', None) != 'cuda':
        return f'{script}: the self-check must run it with --device cuda'
    return None


def _check_pytest(args: List[str]) -> Optional[str]:
    """None if pytest collects, with ``args``, every test of REQUIRED_CUDA_TESTS."""
    import pytest
    names: List[str] = []

    class Collector:
        def pytest_collection_finish(self, session):
            names.extend(item.name.split('[')[0] for item in session.items)

    keep, skip = [], False  # the report file is not written by a collection
    for a in args:
        if skip or a.startswith('--junitxml='):
            skip = False
            continue
        if a == '--junitxml':
            skip = True
            continue
        keep.append(a)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider'] + keep,
                         plugins=[Collector()])
    if rc not in (0, 5):
        return f'pytest {" ".join(keep)} does not collect (exit {int(rc)}):\n' + \
            out.getvalue()[-2000:]
    missing = [f'{what} ({fn})' for what, fn in REQUIRED_CUDA_TESTS.items() if fn not in names]
    if missing:
        return f'pytest {" ".join(keep)} does not collect: ' + '; '.join(missing)
    return None


def _check_self(args: List[str]) -> Optional[str]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = _parser().parse_args(args)
    except SystemExit:
        return f'tools/gpu_selfcheck.py rejects {" ".join(args)}: {err.getvalue().strip()}'
    if ns.cmd not in COMMANDS:
        return f'tools/gpu_selfcheck.py {ns.cmd}: parsed but not wired to a function'
    return None


def check_python_step(args: List[str]) -> Optional[str]:
    """One python invocation of the plan (the arguments after the interpreter)."""
    if not args:
        return 'empty python command'
    if args[0] == '-c':
        try:
            compile(args[1], '<-c>', 'exec')
        except SyntaxError as e:
            return f'python -c code does not parse: {e}'
        return None
    if args[:2] == ['-m', 'pytest']:
        return _check_pytest(args[2:])
    if args[0].startswith('benchmarks/'):
        return _check_benchmark(args[0], args[1:])
    if args[0] == 'tools/gpu_selfcheck.py':
        return _check_self(args[1:])
    return f'python {args[0]}: not a step the dry run knows how to check'


def validate(plan: str) -> int:
    """Check every ``python`` step of the plan; print one line per step; 1 if any is broken."""
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    problems = 0
    with open(plan) as f:
        lines = [ln.rstrip('\n').split('\t') for ln in f if ln.strip()]
    for fields in lines:
        if len(fields) < 3:
            print(f'[dry-run] malformed plan line {fields!r} BROKEN')
            problems += 1
            continue
        name, kind, argv = fields[0], fields[1], fields[2:]
        t0 = time.perf_counter()
        if kind == 'python':
            err = check_python_step(argv)
        elif kind in ('fn-ok', 'fn-broken'):  # checked by the shell script itself
            err = None if kind == 'fn-ok' else ' '.join(argv)
        else:
            err = f'unknown kind of step {kind!r}'

        status = 'ok' if err is None else 'BROKEN'
        print(f'[dry-run] {name:<24} {status} ({time.perf_counter() - t0:.1f} s)'
              + ('' if err is None else f': {err}'), flush=True)
        problems += err is not None
    return 1 if problems else 0


# ---------------------------------------------------------------------------------- env
IMPORT_NAMES = {'opencv-python': 'cv2', 'scikit-learn': 'sklearn', 'faiss-gpu': 'faiss',
                'faiss-cpu': 'faiss'}
KEEP = ('torch', 'torchvision', 'numpy', 'setuptools')


def missing_requirements() -> List[str]:
    """Packages of requirements/{runtime,faiss-gpu,tests}.txt that do not import here (by
    name, unpinned: they must fit the interpreter's existing torch and numpy)."""
    import importlib.util
    import re
    out = []
    for name in ('runtime.txt', 'faiss-gpu.txt', 'tests.txt'):
        with open(osp.join(ROOT, 'requirements', name)) as f:
            for line in f:
                line = line.split('#')[0].strip()
                if not line:
                    continue
                pkg = re.split(r'[=<>!~ ;\[]', line)[0]
                if pkg in KEEP:
                    continue
                module = IMPORT_NAMES.get(pkg, pkg.replace('-', '_'))
                if importlib.util.find_spec(module) is None:
                    out.append(pkg)
    return out



def mmcv_ops_check() -> int:
    """nms and roi_align of mmcv's compiled CUDA ops on inputs with known results."""
    import torch
    from mmcv.ops import nms, roi_align
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]],
                         device='cuda')
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device='cuda'), 0.5)
    assert keep.tolist() == [0, 2], keep  # IoU(0, 1) = 81 / 119 > 0.5
    x = torch.arange(64.0, device='cuda').view(1, 1, 8, 8)  # x[i, j] = 8 i + j
    rois = torch.tensor([[0., 0., 0., 8., 8.]], device='cuda')
    out = roi_align(x, rois, (2, 2), 1.0, 2, 'avg', True)
    # aligned bins of 4 x 4 pixels sampled at 2 x 2 points: the ramp's value at their mean
    want = torch.tensor([[[[13.5, 17.5], [45.5, 49.5]]]], device='cuda')
    assert torch.allclose(out, want, atol=1e-4), out
    print('mmcv.ops nms and roi_align ran on the GPU and gave the expected results')
    return 0


def _run(cmd: List[str]) -> Optional[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def env_report(out: str) -> int:
    info: Dict = dict(python=platform.python_version(), executable=sys.executable,
                      platform=platform.platform(), cpu_count=os.cpu_count())
    info['nvidia_smi'] = _run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total,'
                               'compute_cap', '--format=csv,noheader'])
    nvcc = shutil.which('nvcc') or (osp.join(os.environ['CUDA_HOME'], 'bin', 'nvcc')
                                   if os.environ.get('CUDA_HOME') else None)
    info['nvcc'] = (_run([nvcc, '--version']) or '').splitlines()[-1:] if nvcc else None
    ok = True
    try:
        import torch
        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), cuda_available=torch.cuda.is_available())
        if torch.cuda.is_available():
            info['gpus'] = [dict(name=torch.cuda.get_device_name(i),
                                 capability='.'.join(map(str, torch.cuda.get_device_capability(i))),
                                 memory_gib=round(torch.cuda.get_device_properties(i).total_memory
                                                  / 2**30, 1))
                            for i in range(torch.cuda.device_count())]
        else:
            ok = False
    except ImportError as e:
        info['torch'], ok = f'not importable: {e}', False
    for mod in ('torchvision', 'mmengine', 'mmcv', 'mmdet', 'numpy', 'cv2', 'mmmsf'):
        try:
            info[mod] = importlib.import_module(mod).__version__
        except Exception as e:  # noqa: BLE001
            info[mod] = f'not importable: {type(e).__name__}: {e}'
    try:
        import mmcv.ops  # noqa: F401
        info['mmcv_ops'] = True
    except Exception as e:  # noqa: BLE001
        info['mmcv_ops'] = f'no compiled ops: {type(e).__name__}'
    try:
        import faiss
        info['faiss'] = faiss.__version__
        info['faiss_gpu'] = hasattr(faiss, 'StandardGpuResources')
        info['faiss_num_gpus'] = faiss.get_num_gpus() if info['faiss_gpu'] else 0
    except Exception as e:  # noqa: BLE001
        info['faiss'] = f'not importable: {type(e).__name__}: {e}'
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(info, f, indent=2)
    print(json.dumps(info, indent=2))
    if not ok:
        print('torch sees no CUDA device: the GPU checks and benchmarks cannot run.',
              file=sys.stderr)
    return 0 if ok else 1


# ---------------------------------------------------------------------------------- summarize
def _load(path: str):
    with open(path) as f:
        return json.load(f)


def read_steps(d: str) -> List[Dict]:
    path = osp.join(d, 'steps.jsonl')
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def read_junit(path: str) -> Dict:
    """Outcome of every test case in a pytest junit XML file (with its recorded properties)."""
    root = ET.parse(path).getroot()
    cases = []
    for tc in root.iter('testcase'):
        outcome, message = 'passed', ''
        for tag in ('failure', 'error', 'skipped'):
            el = tc.find(tag)
            if el is not None:
                outcome = {'failure': 'failed', 'error': 'error', 'skipped': 'skipped'}[tag]
                message = (el.get('message') or el.text or '').strip().splitlines()[0][:300] \
                    if (el.get('message') or el.text) else ''
                break
        props = {p.get('name'): p.get('value') for p in tc.iter('property')}
        cases.append(dict(name=f'{tc.get("classname")}::{tc.get("name")}', outcome=outcome,
                          seconds=float(tc.get('time') or 0), message=message,
                          properties=props))
    counts = {k: sum(c['outcome'] == k for c in cases)
              for k in ('passed', 'failed', 'error', 'skipped')}
    return dict(counts=counts, cases=cases)


def _f(x, digits=3):
    if x is None:
        return '-'
    if isinstance(x, float):
        return f'{x:,.{digits}f}'
    return f'{x:,}' if isinstance(x, int) else str(x)


def _table(cols: List[str], rows: List[List]) -> List[str]:
    return ['| ' + ' | '.join(cols) + ' |', '|' + '|'.join('---' for _ in cols) + '|'] + \
        ['| ' + ' | '.join(_f(v) for v in r) + ' |' for r in rows] + ['']


def bench_sections(bench: Dict[str, Dict]) -> List[str]:
    """Markdown sections of the benchmarks that wrote their JSON."""
    md: List[str] = []
    so = bench.get('step_overhead')
    if so:
        p = so['settings']['preset']
        md += [f'### MSF / BYOL-asym step ratio (ResNet-{p["depth"]}, {p["img_size"]} px, '
               f'batch {p["batch"]}, median of paired ratios over '
               f'{so["settings"]["repeats"]} rounds)', '']
        md += _table(['variant', 'bank', 'search', 'step ms', 'ratio to BYOL-asym',
                      '1 + timed extra search / BYOL step', 'goal', 'met'],
                     [[r['variant'], r['bank_size'], r['search'], r['step_ms'],
                       r['ratio_to_byol'], r['ratio_from_timed_search'],
                       r.get('goal_ratio'), {True: 'yes', False: 'NO', None: '-'}[
                           r.get('meets_goal')]] for r in so['results']])
    sk = bench.get('search_kernel')
    if sk:
        md += ['### Search kernel vs. plain float32 GEMM of the same shape', '']
        md += _table(['B x K x D', 'variant', 'ms', 'GFLOP/s', 'of GEMM', 'top-k overlap '
                      'with fp32'],
                     [[f'{r["B"]}x{r["K"]}x{r["D"]}', r['variant'], r['ms'], r['gflops'],
                       f'{100 * r["fraction_of_gemm"]:.0f}%', r.get('overlap_with_fp32')]
                      for r in sk['results']])
    mem = bench.get('memory')
    if mem:
        md += [f'### Memory of one step\'s enqueue + neighbour selection (batch '
               f'{mem["settings"]["batch"]}, D = {mem["settings"]["dim"]})', '']
        md += _table(['bank', 'dtype', 'search', 'selector', 'one block MiB', 'peak MiB',
                      'within one block'],
                     [[r['bank_size'], r['bank_dtype'], r['search'], r['selector'],
                       r['distance_block_bytes'] / 2**20, r['peak_bytes'] / 2**20,
                       {True: 'yes', False: 'NO', None: 'n/a'}[r['within_one_block']]]
                      for r in mem['results']])
    st = bench.get('step_throughput')
    if st:
        p = st['settings']['preset']
        md += [f'### MSF step throughput (ResNet-{p["depth"]}, {p["img_size"]} px, batch '
               f'{p["batch"]}, bank {st["settings"]["bank_size"]:,})', '']
        md += _table(['format', 'images/s', 'step ms', 'vs. first', 'step peak above held MiB',
                      'peak MiB'],
                     [[r['format'] + (f' ({r["amp_dtype"]})' if r.get('amp_dtype') else ''),
                       r['images_per_s'], r['step_ms'], r['speedup_vs_first'],
                       r.get('step_peak_above_held_mib'), r.get('peak_mib')]
                      for r in st['results']])
    dl = bench.get('data_loading')
    if dl:
        md += [f'### Data loading (w/s pipeline at {dl["settings"]["img_size"]} px) vs. the '
               'step\'s consumption', '']
        rows = [[r['stage'], r['images_per_s']] for r in dl['results']]
        rows.append(['workers needed at the fp32 step (per-worker rate)', dl['workers_needed']])
        if st:
            best = max(st['results'], key=lambda r: r['images_per_s'])
            per = dl['per_worker_images_per_s']
            rows.append([f'workers needed at the fastest step ({best["format"]}, '
                         f'{best["images_per_s"]:.0f} images/s)',
                         math.ceil(best['images_per_s'] / per) if per else None])
        md += _table(['stage', 'images/s'], rows)
    return md


def summarize(d: str, budget: Optional[float]) -> int:
    steps = read_steps(d)
    summary: Dict = dict(budget_s=budget, steps=steps,
                         wall_s=round(sum(s.get('seconds', 0) for s in steps), 1))
    env_path = osp.join(d, 'env.json')
    summary['environment'] = _load(env_path) if osp.isfile(env_path) else None
    junit = osp.join(d, 'cuda_tests.xml')
    try:
        summary['tests'] = read_junit(junit) if osp.isfile(junit) else None
    except ET.ParseError as e:
        summary['tests'] = dict(error=f'unreadable {junit}: {e}')
    bench: Dict[str, Dict] = {}
    bdir = osp.join(d, 'bench')
    for name in sorted(os.listdir(bdir)) if osp.isdir(bdir) else []:
        if name.endswith('.json'):
            try:
                bench[name[:-5]] = _load(osp.join(bdir, name))
            except (OSError, ValueError) as e:
                bench[name[:-5]] = dict(error=str(e))
    summary['benchmarks'] = bench
    failed = [s['name'] for s in steps if s.get('status') != 'ok']
    tests = summary['tests'] or {}
    counts = tests.get('counts', {})
    complete = not failed and counts.get('passed', 0) > 0 and not counts.get('failed') \
        and not counts.get('error') and not counts.get('skipped')
    summary['verdict'] = dict(all_steps_ok=not failed, failed_or_cut_steps=failed,
                              tests=counts, complete=complete)

    env = summary['environment'] or {}
    md = ['# GPU self-check', '',
          f'Verdict: **{"complete, all checks passed" if complete else "INCOMPLETE or FAILED"}**'
          f' -- steps {len(steps) - len(failed)}/{len(steps)} ok, cuda tests '
          + ', '.join(f'{v} {k}' for k, v in counts.items()) + '.', '',
          f'Wall time of the steps: {summary["wall_s"]:.0f} s'
          + (f' (budget {budget:.0f} s)' if budget else '') + '.', '']
    if env:
        md += ['## Environment', '']
        gpus = env.get('gpus') or []
        md += _table(['what', 'value'], [
            ['GPU (nvidia-smi: name, driver, memory, capability)', env.get('nvidia_smi')],
            ['torch GPUs', '; '.join(f'{g["name"]} (sm {g["capability"]}, {g["memory_gib"]} GiB)'
                                     for g in gpus) or '-'],
            ['python', env.get('python')], ['torch / CUDA / cuDNN',
                                            f'{env.get("torch")} / {env.get("torch_cuda")} / '
                                            f'{env.get("cudnn")}'],
            ['faiss (GPU)', f'{env.get("faiss")} ({env.get("faiss_gpu")}, '
                            f'{env.get("faiss_num_gpus")} GPUs)'],
            ['mmengine / mmcv / mmdet', f'{env.get("mmengine")} / {env.get("mmcv")} / '
                                        f'{env.get("mmdet")}'],
            ['mmcv compiled ops', env.get('mmcv_ops')], ['nvcc', env.get('nvcc')],
            ['CPU cores', env.get('cpu_count')]])
    md += ['## Steps', '']
    md += _table(['step', 'status', 'seconds', 'note'],
                 [[s['name'], s['status'], f"{s.get('seconds', 0):.1f}", s.get('note', '')]
                  for s in steps])
    if tests.get('cases'):
        md += ['## Correctness on the GPU (`pytest -m cuda`)', '']
        md += _table(['test', 'outcome', 's', 'recorded / message'],
                     [[c['name'].split('.')[-1], c['outcome'], c['seconds'],
                       ', '.join(f'{k}={v}' for k, v in c['properties'].items())
                       or c['message']] for c in tests['cases']])
    md += ['## Numbers', ''] + (bench_sections(bench) if bench else ['(no benchmark ran)', ''])
    with open(osp.join(d, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    with open(osp.join(d, 'summary.md'), 'w') as f:
        f.write('\n'.join(md))
    print('\n'.join(md))
    return 0 if complete else 1


def _print_missing() -> int:
    print(' '.join(missing_requirements()))
    return 0


COMMANDS = {  # sub-command -> function of the parsed arguments
    'validate': lambda a: validate(a.plan),
    'env-report': lambda a: env_report(a.out),
    'mmcv-ops-check': lambda a: mmcv_ops_check(),
    'missing-requirements': lambda a: _print_missing(),
    'summarize': lambda a: summarize(a.dir, a.budget),
}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    return COMMANDS[args.cmd](args)


if __name__ == '__main__':
    sys.exit(main())
