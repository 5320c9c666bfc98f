"""``tools/gpu_selfcheck.sh --dry-run``: on the CPU, in seconds, every step of the GPU
self-check exists, parses and is wired; a broken step fails the dry run and is named. And the
summary of a real run reports what failed, was cut or skipped. The entry in tools/ hands its
arguments to the harness in dev/gpu_selfcheck/."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import torch

import mmmsf
from mmmsf.utils.machine import cpu_model
from tests.conftest import ROOT

ENTRY = osp.join(ROOT, 'tools', 'gpu_selfcheck.sh')
HARNESS = osp.join(ROOT, 'dev', 'gpu_selfcheck')
SCRIPT = osp.join(HARNESS, 'selfcheck.sh')
STEPS = ('env_venv', 'env_install', 'env_mmcv', 'env_mmmsf', 'env_report', 'cuda_tests',
         'study_data', 'study_plan', 'study', 'study_export', 'bench_step_overhead', 'bench_step_throughput', 'bench_search_kernel', 'bench_memory',
         'bench_data_loading', 'mmcv_ops', 'mmcv_ops_check')


def dry_run(script, out):
    env = dict(os.environ, MMMSF_ROOT=ROOT, PYTHON=sys.executable,
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))
    return subprocess.run(['bash', str(script), '--dry-run', '--out', str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def step_lines(stdout):
    return {ln.split()[1]: ln for ln in stdout.splitlines()
            if ln.startswith('[dry-run] ') and len(ln.split()) > 2}


def test_dry_run_checks_every_step_and_writes_no_results(tmp_path):
    r = dry_run(ENTRY, tmp_path / 'out')
    assert r.returncode == 0, r.stdout + r.stderr
    lines = step_lines(r.stdout)
    assert list(lines)[:len(STEPS)] == list(STEPS)  # in the order the real run takes them
    for step in STEPS:
        assert lines[step].split()[2] == 'ok', (step, r.stdout)
    assert f'all {len(STEPS)} steps ok' in r.stdout
    assert not (tmp_path / 'out').exists()  # nothing that could pass for a real summary


def test_dry_run_fails_and_names_each_broken_step(tmp_path):
    """A copy of the script with three breakages: a benchmark flag that does not exist, a
    pytest target that lacks required GPU tests, and an environment step that is not defined."""
    text = open(SCRIPT).read()
    breaks = [('--shapes 256x128000x512', '--no-such-flag --shapes 256x128000x512'),
              ('"train_cfg.max_epochs=$EPOCHS"', '"train_cfg.max_epoch=$EPOCHS"'),
              ('-m cuda tests/test_cuda ', '-m cuda tests/test_cuda/test_kmeans_gpu.py '),
              ('run_step env_mmcv 150 fn env_mmcv', 'run_step env_mmcv 150 fn env_mmcv_lite')]
    for old, new in breaks:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    broken = tmp_path / 'gpu_selfcheck.sh'
    broken.write_text(text)
    r = dry_run(broken, tmp_path / 'out')
    assert r.returncode != 0
    lines = step_lines(r.stdout)
    assert 'BROKEN' in lines['bench_search_kernel']
    assert 'unrecognized arguments: --no-such-flag' in lines['bench_search_kernel']
    assert 'BROKEN' in lines['cuda_tests']
    assert 'test_syncbn_target_in_one_process_nccl_group' in lines['cuda_tests']
    assert 'BROKEN' in lines['env_mmcv'] and 'no function env_mmcv_lite' in lines['env_mmcv']
    assert 'BROKEN' in lines['study'] and 'max_epoch' in lines['study']
    for step in ('bench_step_overhead', 'bench_memory', 'env_venv'):  # the rest still pass
        assert lines[step].split()[2] == 'ok', lines[step]
    assert 'FAILED' in r.stdout


def test_unknown_option_is_one_clear_error():
    r = subprocess.run(['bash', ENTRY, '--budjet', '100'], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and 'unknown option --budjet' in r.stderr


def test_the_entry_is_thin_and_answers_help_from_any_folder(tmp_path):
    assert len(open(ENTRY).read().splitlines()) <= 6
    r = subprocess.run(['bash', ENTRY, '--help'], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert 'bash tools/gpu_selfcheck.sh --pack .gpu_pack' in r.stdout
    assert '--cpu-rehearsal' in r.stdout and not r.stdout.startswith('#!')


def load_tool():
    spec = importlib.util.spec_from_file_location('gpu_selfcheck',
                                                  osp.join(HARNESS, 'selfcheck.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_reports_failed_cut_and_skipped_steps_and_tests(tmp_path):
    main = load_tool().main
    steps = [dict(name='env_install', status='ok', seconds=80.0, rc=0, note=''),
             dict(name='cuda_tests', status='failed', seconds=40.0, rc=1, note='1 failed'),
             dict(name='bench_memory', status='timeout', seconds=60.0, rc=124, note='cut'),
             dict(name='mmcv_ops', status='skipped', seconds=0, rc=0, note='budget')]
    (tmp_path / 'steps.jsonl').write_text(''.join(json.dumps(s) + '\n' for s in steps))
    (tmp_path / 'cuda_tests.xml').write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_cuda.test_x" name="test_a" time="1.5">'
        '<properties><property name="abs_diff" value="0.004"/></properties></testcase>'
        '<testcase classname="tests.test_cuda.test_x" name="test_b" time="0.1">'
        '<failure message="assert 1 == 2">trace</failure></testcase>'
        '<testcase classname="tests.test_cuda.test_x" name="test_c" time="0">'
        '<skipped message="needs faiss-gpu"/></testcase>'
        '</testsuite></testsuites>')
    assert main(['summarize', str(tmp_path), '--budget', '480']) == 1
    summary = json.loads((tmp_path / 'summary.json').read_text())
    verdict = summary['verdict']
    assert not verdict['complete'] and not verdict['all_steps_ok']
    assert verdict['failed_or_cut_steps'] == ['cuda_tests', 'bench_memory', 'mmcv_ops']
    assert verdict['tests'] == dict(passed=1, failed=1, error=0, skipped=1)
    md = (tmp_path / 'summary.md').read_text()
    assert 'INCOMPLETE or FAILED' in md and 'abs_diff=0.004' in md
    assert 'needs faiss-gpu' in md and '| bench_memory | timeout |' in md


def test_env_report_is_collect_env_plus_the_gpu_fields_and_the_summary_shows_it(tmp_path):
    tool = load_tool()
    out = tmp_path / 'env.json'
    assert tool.main(['env-report', str(out), '--no-gpu-ok']) == 0
    env = json.loads(out.read_text())
    assert env['PyTorch'] == torch.__version__ and env['mmmsf'] == mmmsf.__version__
    assert env['CPU'] == cpu_model() and 'PyTorch compiling details' in env
    assert {'nvidia_smi', 'torch_cuda', 'cudnn', 'mmcv', 'mmcv_ops', 'faiss_gpu'} <= set(env)
    if not torch.cuda.is_available():  # no GPU is an error outside a rehearsal
        assert tool.main(['env-report', str(tmp_path / 'e2.json')]) == 1
    tool.main(['summarize', str(tmp_path)])
    md = (tmp_path / 'summary.md').read_text()
    assert f'| torch / CUDA / cuDNN | {torch.__version__} / ' in md
    assert f'| CPU | {cpu_model()}, ' in md
