"""The Python side of ``dev/gpu_selfcheck/selfcheck.sh``: check the plan of a dry run,
report the environment, and write ``summary.md`` / ``summary.json`` from the steps' results.

    python dev/gpu_selfcheck/selfcheck.py validate PLAN.tsv    # dry run: every step is wired
    python dev/gpu_selfcheck/selfcheck.py env-report OUT.json  # versions, GPU, driver, CUDA
    python dev/gpu_selfcheck/selfcheck.py summarize DIR        # DIR/steps.jsonl -> summary
    python dev/gpu_selfcheck/selfcheck.py rehearse-bench OUT.json -- -m benchmarks.X ARGS
                        # no GPU: ARGS parse, then one --quick iteration on the CPU
    python dev/gpu_selfcheck/selfcheck.py rehearsal-verdict DIR  # every step that should run ran

What travels and what comes back: pack.py; the study's plan and backbones: study.py (both
beside this file).
"""
import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import math
import os
import os.path as osp
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(HERE))
# the plan's names of this script and of the study's (relative to ROOT, where steps run)
SELF_SCRIPT = 'dev/gpu_selfcheck/selfcheck.py'
STUDY_SCRIPT = 'dev/gpu_selfcheck/study.py'

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
    e.add_argument('--no-gpu-ok', action='store_true', help='a rehearsal: no GPU is no error')
    r = sub.add_parser('rehearse-bench', help='check a benchmark\'s GPU arguments, run it '
                       '--quick on the CPU')
    r.add_argument('out')
    r.add_argument('command', nargs=argparse.REMAINDER)
    sub.add_parser('rehearsal-verdict', help='exit 1 unless every step that should run in a '
                   'rehearsal ran').add_argument('dir')
    sub.add_parser('mmcv-ops-check', help='run two of mmcv\'s compiled ops on the GPU')
    sub.add_parser('missing-requirements',
                   help='print the requirements/ packages this interpreter cannot import '
                        '(torch, torchvision, numpy and setuptools are kept as they are)')
    s = sub.add_parser('summarize', help='write summary.md and summary.json')
    s.add_argument('dir')
    s.add_argument('--budget', type=float, default=None)
    s.add_argument('--rehearsal', action='store_true', help='a CPU rehearsal of the GPU run')
    return p


def _check_benchmark(module_name: str, args: List[str]) -> Optional[str]:
    """None if the module ``benchmarks.<name>`` exists and its own parser accepts ``args``."""
    script = f'python -m {module_name}'
    path = osp.join(ROOT, *module_name.split('.')) + '.py'
    if not module_name.startswith('benchmarks.') or not osp.isfile(path):
        return f'{script}: no {osp.relpath(path, ROOT)}'
    try:
        module = importlib.import_module(module_name)
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
        return f'{SELF_SCRIPT} rejects {" ".join(args)}: {err.getvalue().strip()}'
    if ns.cmd not in COMMANDS:
        return f'{SELF_SCRIPT} {ns.cmd}: parsed but not wired to a function'
    return None


def _script(path: str):
    """The script ``path`` (relative to the checkout) loaded as a module, e.g. for its
    ``parse_args``."""
    name = 'selfcheck_' + osp.splitext(path)[0].replace('/', '_').replace('-', '_')
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_study(args: List[str]) -> Optional[str]:
    """``dev/gpu_selfcheck/study.py`` parses ``args``; a plan's config loads with its options."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = _script(STUDY_SCRIPT).parse_args(args)
    except SystemExit:
        return f'{STUDY_SCRIPT} rejects {" ".join(args)}: {err.getvalue().strip()}'
    if ns.cmd == 'plan':
        return _check_configs([ns.config], ns.cfg_options)
    return None


def _check_configs(configs: List[str], opts: Optional[Dict]) -> Optional[str]:
    """None if every config loads with the ``--cfg-options`` ``opts`` (as parsed)."""
    from mmmsf.apis.config import load_config
    for c in configs:
        try:
            load_config(c, opts)
        except Exception as e:  # noqa: BLE001 -- the config's problem is the step's problem
            return f'{c} does not load with {opts or {}}: {type(e).__name__}: {e}'
    return None


def _check_cifar_benchmark(args: List[str]) -> Optional[str]:
    """The study's command: the tool's own parser accepts it, and every config loads with its
    --cfg-options."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = _script('tools/cifar_benchmark.py').parse_args(args)
    except SystemExit:
        return f'tools/cifar_benchmark.py rejects {" ".join(args)}: {err.getvalue().strip()}'
    return _check_configs(ns.configs or [], ns.cfg_options)


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
    if args[0] == '-m' and len(args) > 1 and args[1].startswith('benchmarks.'):
        return _check_benchmark(args[1], args[2:])
    if args[0] == SELF_SCRIPT:
        return _check_self(args[1:])
    if args[0] == STUDY_SCRIPT:
        return _check_study(args[1:])
    if args[0] == 'tools/cifar_benchmark.py':
        return _check_cifar_benchmark(args[1:])
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


def env_report(out: str, no_gpu_ok: bool = False) -> int:
    """Write the environment as JSON: mmmsf's ``collect_env`` (mmengine's report with torch's
    build details, plus mmmsf, the CPU and faiss) and what only this check asks: nvidia-smi,
    each GPU's capability and memory, torch's CUDA and cuDNN, mmcv / mmdet / numpy, mmcv's
    compiled ops and faiss's GPU support. 1 if torch sees no GPU (unless ``no_gpu_ok``)."""
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    try:  # imported here: the summary and the dry run also run where torch is absent
        import torch

        from mmmsf.utils.collect_env import collect_env
    except ImportError as e:
        info = dict(error=f'torch or mmmsf does not import: {type(e).__name__}: {e}')
        with open(out, 'w') as f:
            json.dump(info, f, indent=2)
        print(info['error'], file=sys.stderr)
        return 1
    info: Dict = collect_env(with_torch_compiling_info=True)
    info.update(executable=sys.executable, platform=platform.platform(),
                torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    info['nvidia_smi'] = _run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total,'
                               'compute_cap', '--format=csv,noheader'])
    ok = torch.cuda.is_available()
    if ok:
        info['gpus'] = [dict(name=torch.cuda.get_device_name(i),
                             capability='.'.join(map(str, torch.cuda.get_device_capability(i))),
                             memory_gib=round(torch.cuda.get_device_properties(i).total_memory
                                              / 2**30, 1))
                        for i in range(torch.cuda.device_count())]
    for mod in ('mmcv', 'mmdet', 'numpy'):
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
        info['faiss_gpu'] = hasattr(faiss, 'StandardGpuResources')
        info['faiss_num_gpus'] = faiss.get_num_gpus() if info['faiss_gpu'] else 0
    except Exception as e:  # noqa: BLE001
        info['faiss_gpu'] = f'not importable: {type(e).__name__}: {e}'
    with open(out, 'w') as f:
        json.dump(info, f, indent=2)
    print(json.dumps(info, indent=2))
    if not ok:
        print('torch sees no CUDA device: the GPU checks and benchmarks cannot run'
              + (' (a rehearsal: expected).' if no_gpu_ok else '.'), file=sys.stderr)
    return 0 if ok or no_gpu_ok else 1


def rehearse_bench(out: str, command: List[str]) -> int:
    """No GPU: check that the benchmark's own parser accepts the GPU run's arguments
    (``command``: ``-m benchmarks.NAME ARGS``), then run one ``--quick`` iteration of it on the
    CPU (1 thread), writing ``out``."""
    if command[:1] == ['--']:
        command = command[1:]
    if len(command) < 2 or command[0] != '-m':
        print(f'rehearse-bench: expected -m benchmarks.NAME ARGS, got {" ".join(command)}',
              file=sys.stderr)
        return 2
    name, args = command[1], command[2:]
    sys.path.insert(0, ROOT)  # as ``python -m`` from the checkout's root
    os.chdir(ROOT)
    err = _check_benchmark(name, args)
    if err:
        print(f'the GPU arguments do not parse: {err}', file=sys.stderr)
        return 1
    print(f'python -m {name}: the GPU run\'s arguments parse ({" ".join(args)})')
    module = importlib.import_module(name)
    t0 = time.perf_counter()
    module.main(['--quick', '--device', 'cpu', '--threads', '1', '--out', out])
    print(f'python -m {name} --quick --device cpu: {time.perf_counter() - t0:.1f} s, '
          f'wrote {out}')
    return 0


# steps of the GPU run that a rehearsal must run (ok), and those it must skip by name
REHEARSAL_RUNS = ('env_venv', 'env_install', 'env_mmcv', 'env_mmmsf', 'env_report',
                  'cuda_tests_cpu_halves', 'study_data', 'study_plan', 'study', 'study_export',
                  'bench_step_overhead_cpu', 'bench_step_throughput_cpu',
                  'bench_search_kernel_cpu', 'bench_memory_cpu', 'bench_data_loading_cpu')
REHEARSAL_SKIPS = ('cuda_tests', 'bench_step_overhead', 'bench_step_throughput',
                   'bench_search_kernel', 'bench_memory', 'bench_data_loading')


def rehearsal_verdict(d: str) -> int:
    """0 if every step that should run in a rehearsal ran (ok), every CUDA-only step was
    skipped by name, the CPU halves of the CUDA tests passed and the study wrote its page."""
    steps = {s['name']: s for s in read_steps(d)}
    problems = []
    for name in REHEARSAL_RUNS:
        st = steps.get(name)
        if st is None:
            problems.append(f'{name}: did not run')
        elif st['status'] != 'ok':
            problems.append(f'{name}: {st["status"]} ({st.get("note", "")})')
    for name in REHEARSAL_SKIPS:
        st = steps.get(name)
        if st is None or st['status'] != 'skipped' or st.get('why') != 'cuda-only':
            problems.append(f'{name}: not reported as skipped (cuda only)')
    unknown = set(steps) - set(REHEARSAL_RUNS) - set(REHEARSAL_SKIPS) - {'mmcv_ops'}
    problems += [f'{n}: a step the rehearsal does not know' for n in sorted(unknown)]
    xml = osp.join(d, 'cpu_tests.xml')
    if osp.isfile(xml):
        counts = read_junit(xml)['counts']
        if not counts['passed'] or counts['failed'] or counts['error']:
            problems.append(f'CPU halves of the CUDA tests: {counts}')
    else:
        problems.append('no cpu_tests.xml')
    if not osp.isfile(osp.join(d, 'study', 'page.md')):
        problems.append('the study wrote no page')
    for p in problems:
        print(f'[rehearse] {p}')
    ran = ', '.join(f'{n} {steps[n]["seconds"]:.0f} s' for n in REHEARSAL_RUNS if n in steps)
    print(f'[rehearse] steps run: {ran}')
    print(f'[rehearse] skipped by name (cuda only): {", ".join(REHEARSAL_SKIPS)}')
    return 1 if problems else 0


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


ON_PURPOSE = ('cuda-only', 'not-requested')  # skips that are no failure of the run


def study_sections(d: str) -> List[str]:
    """The study's plan (which of step and loader limited it), measured rate, page and
    exported backbones."""
    sd = osp.join(d, 'study')
    md: List[str] = []
    plan = _load(osp.join(sd, 'plan.json')) if osp.isfile(osp.join(sd, 'plan.json')) else None
    if plan:
        p = plan['probe']
        md += ['### Plan (a probe of the MSF config before training)', '']
        md += _table(['what', 'value'], [
            ['training step alone (real batches held on the device)',
             f'{p["step_images_per_s"]:,.0f} images/s ({p["step_ms"]:.1f} ms per batch of '
             f'{p["batch"]}, {p["device"]})'],
            ['data loader alone', f'{p["loader_images_per_s"]:,.0f} images/s '
             f'({p["loader_workers"]} workers, first {p["loader_batches_timed"]} batches, '
             'start included)'],
            ['limited by (the slower)', plan['limited_by']],
            ['training seconds per config (budget)', f'{plan["seconds"]:.0f} s'],
            ['epoch estimate', f'{plan["epoch_s_estimate"]:.1f} s'],
            ['epochs', plan['epochs']]])
    res_path = osp.join(sd, 'results.json')
    if osp.isfile(res_path):
        res = _load(res_path)
        rows = []
        for key, r in res.items():
            if key.startswith('_'):
                continue
            sec = r.get('seconds', {})
            rate = r['images_seen'] / sec['train'] if sec.get('train') else None
            rows.append([key, r['steps'], r['images_seen'], sec.get('train'), rate,
                         sec.get('knn')])
        md += ['### Measured', '']
        md += _table(['run', 'steps', 'images seen', 'train s', 'images/s (train, hooks '
                      'included)', 'kNN s'], rows)
        if plan and rows and rows[0][4]:
            share = rows[0][4] / plan['probe']['step_images_per_s']
            md += [f'The MSF run trained at {100 * share:.0f}% of the step-alone rate: '
                   + ('the step (the GPU) limited it.' if share >= 0.8 else
                      'something besides the step (loader, hooks, validation) took '
                      f'{100 * (1 - share):.0f}% of the time.'), '']
    page = osp.join(sd, 'page.md')
    if osp.isfile(page):
        with open(page) as f:
            md += [ln.replace('# ', '#### ', 1) if ln.startswith('# ') else ln
                   for ln in f.read().splitlines()] + ['']
    exp = osp.join(sd, 'export.json')
    if osp.isfile(exp):
        e = _load(exp)
        md += ['Backbones (float16; the kNN numbers are of the float32 weights): '
               + (f'{", ".join(e["parts"])} ({e["bytes"] / 2**20:.1f} MiB, sha256 '
                  f'{e["sha256"][:12]}; join: `cat backbones_fp16.pt.part* > '
                  'backbones_fp16.pt`)' if e['parts'] else f'not sent back: {e.get("left_out")}'),
               '']
    return md or ['(the study did not run)', '']


def summarize(d: str, budget: Optional[float], rehearsal: bool = False) -> int:
    steps = read_steps(d)
    summary: Dict = dict(budget_s=budget, rehearsal=rehearsal, steps=steps,
                         wall_s=round(sum(s.get('seconds', 0) for s in steps), 1))
    env_path = osp.join(d, 'env.json')
    summary['environment'] = _load(env_path) if osp.isfile(env_path) else None
    for key, name in (('tests', 'cuda_tests.xml'), ('cpu_tests', 'cpu_tests.xml')):
        junit = osp.join(d, name)
        try:
            summary[key] = read_junit(junit) if osp.isfile(junit) else None
        except ET.ParseError as e:
            summary[key] = dict(error=f'unreadable {junit}: {e}')
    bench: Dict[str, Dict] = {}
    bdir = osp.join(d, 'bench')
    for name in sorted(os.listdir(bdir)) if osp.isdir(bdir) else []:
        if name.endswith('.json'):
            try:
                bench[name[:-5]] = _load(osp.join(bdir, name))
            except (OSError, ValueError) as e:
                bench[name[:-5]] = dict(error=str(e))
    summary['benchmarks'] = bench
    for name in ('plan', 'export'):
        path = osp.join(d, 'study', f'{name}.json')
        summary[f'study_{name}'] = _load(path) if osp.isfile(path) else None
    failed = [s['name'] for s in steps if s.get('status') != 'ok'
              and not (s.get('status') == 'skipped' and s.get('why') in ON_PURPOSE)]
    on_purpose = [s['name'] for s in steps if s.get('status') == 'skipped'
                  and s.get('why') in ON_PURPOSE]
    tests = summary['tests'] or {}
    counts = tests.get('counts', {})
    faiss_skips = [c['name'] for c in tests.get('cases', [])
                   if c['outcome'] == 'skipped' and 'faiss-gpu' in c['message']]
    complete = not failed and counts.get('passed', 0) > 0 and not counts.get('failed') \
        and not counts.get('error') and counts.get('skipped', 0) == len(faiss_skips)
    summary['verdict'] = dict(all_steps_ok=not failed, failed_or_cut_steps=failed,
                              skipped_on_purpose=on_purpose, tests=counts,
                              faiss_gpu_skips=faiss_skips, complete=complete)
    env = summary['environment'] or {}
    verdict = ('complete, all checks passed' + (f' ({len(faiss_skips)} faiss-gpu tests '
                                                 'skipped: faiss-gpu not installed)'
                                                 if faiss_skips else '')
               if complete else 'INCOMPLETE or FAILED')
    md = ['# GPU self-check' + (' -- CPU REHEARSAL (no GPU: no number below is a GPU number)'
                                if rehearsal else ''), '',
          f'Verdict: **{verdict}** -- steps {len(steps) - len(failed) - len(on_purpose)}/'
          f'{len(steps)} ok, {len(on_purpose)} skipped on purpose, cuda tests '
          + (', '.join(f'{v} {k}' for k, v in counts.items()) or 'not run') + '.', '',
          f'Wall time of the steps: {summary["wall_s"]:.0f} s'
          + (f' (budget {budget:.0f} s)' if budget else '') + '.', '']
    if on_purpose:
        md += ['Skipped on purpose: ' + '; '.join(
            f'{s["name"]} ({s["note"]})' for s in steps if s['name'] in on_purpose) + '.', '']
    if env:
        md += ['## Environment', '']
        gpus = env.get('gpus') or []
        md += _table(['what', 'value'], [
            ['GPU (nvidia-smi: name, driver, memory, capability)', env.get('nvidia_smi')],
            ['torch GPUs', '; '.join(f'{g["name"]} (sm {g["capability"]}, {g["memory_gib"]} GiB)'
                                     for g in gpus) or '-'],
            ['python', (env.get('Python') or '-').split(' ')[0]],
            ['torch / CUDA / cuDNN', f'{env.get("PyTorch")} / {env.get("torch_cuda")} / '
                                     f'{env.get("cudnn")}'],
            ['faiss (GPU)', f'{env.get("faiss")} ({env.get("faiss_gpu")}, '
                            f'{env.get("faiss_num_gpus")} GPUs)'],
            ['mmengine / mmcv / mmdet / mmmsf', f'{env.get("MMEngine")} / {env.get("mmcv")} / '
                                                f'{env.get("mmdet")} / {env.get("mmmsf")}'],
            ['mmcv compiled ops', env.get('mmcv_ops')],
            ['nvcc (CUDA_HOME)', f'{env.get("NVCC", "-")} ({env.get("CUDA_HOME", "-")})'],
            ['GCC', env.get('GCC', '-')],
            ['CPU', f'{env.get("CPU")}, {env.get("CPU cores")} cores']]
            + ([['environment report', env.get('collect_env') or env.get('error')]]
               if env.get('collect_env') or env.get('error') else []))
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
    cpu = summary.get('cpu_tests') or {}
    if cpu.get('counts'):
        md += ['## CPU halves of the CUDA tests (`pytest -m "not cuda" tests/test_cuda`)', '',
               ', '.join(f'{v} {k}' for k, v in cpu['counts'].items()) + '.', '']
    md += ['## Learning study: MSF w/s (k = 5) vs BYOL-asym (k = 1), kNN top-1 (%)', '']
    md += study_sections(d)
    md += ['## Numbers' + (' (CPU, --quick: wiring only)' if rehearsal else ''), '']
    md += bench_sections(bench) if bench else ['(no benchmark ran)', '']
    with open(osp.join(d, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    with open(osp.join(d, 'summary.md'), 'w') as f:
        f.write('\n'.join(md))
    print('\n'.join(md))
    if rehearsal:  # no GPU: every step that could run ran; the CUDA ones were skipped by name
        return 0 if not failed else 1
    return 0 if complete else 1


def _print_missing() -> int:
    print(' '.join(missing_requirements()))
    return 0


COMMANDS = {  # sub-command -> function of the parsed arguments
    'validate': lambda a: validate(a.plan),
    'env-report': lambda a: env_report(a.out, a.no_gpu_ok),
    'rehearse-bench': lambda a: rehearse_bench(a.out, a.command),
    'rehearsal-verdict': lambda a: rehearsal_verdict(a.dir),
    'mmcv-ops-check': lambda a: mmcv_ops_check(),
    'missing-requirements': lambda a: _print_missing(),
    'summarize': lambda a: summarize(a.dir, a.budget, a.rehearsal),
}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    return COMMANDS[args.cmd](args)


if __name__ == '__main__':
    sys.exit(main())
