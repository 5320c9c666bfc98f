"""What travels to the GPU machine and what comes back (dev/gpu_selfcheck/pack.py), and the
rehearsal of the GPU run on the CPU (``tools/gpu_selfcheck.sh --rehearse``)."""
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

ENTRY = osp.join(ROOT, 'tools', 'gpu_selfcheck.sh')
HARNESS = osp.join(ROOT, 'dev', 'gpu_selfcheck')
SCRIPT = osp.join(HARNESS, 'selfcheck.sh')


def load(name):
    spec = importlib.util.spec_from_file_location(f'gpu_selfcheck_{name}',
                                                  osp.join(HARNESS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def git(repo, *args):
    subprocess.run(['git', '-C', str(repo), *args], check=True, capture_output=True)


def write(path, nbytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'x' * nbytes)


@pytest.fixture
def checkout(tmp_path):
    """A git checkout: tracked, untracked-not-ignored, ignored build output, ignored pack."""
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q')
    (repo / '.gitignore').write_text('work_dirs/\n/.gpu_pack/\n')
    write(repo / 'tools' / 'a.py', 1000)
    git(repo, 'add', '.gitignore', 'tools/a.py')
    git(repo, '-c', 'user.email=t@t', '-c', 'user.name=t', 'commit', '-q', '-m', 'x')
    write(repo / 'configs' / 'new.py', 300)              # untracked, not ignored: travels
    write(repo / 'work_dirs' / 'venv' / 'big.bin', 50000)  # ignored build output: stays
    write(repo / '.gpu_pack' / 'wheelhouse' / 'w.whl', 7000)  # carried
    write(repo / '.gpu_pack' / 'cifar10-jpg.tar.gz', 2000)
    return repo


def test_travel_size_counts_the_checkout_and_the_carried_pack_not_ignored_outputs(checkout,
                                                                                tmp_path):
    gp = load('pack')
    gitignore = len((checkout / '.gitignore').read_bytes())
    size = gp.travel_size(str(checkout), ['.gpu_pack'])
    tree = size['parts']['checkout (tracked + untracked, not ignored)']
    assert tree == dict(bytes=1000 + 300 + gitignore, files=3)
    assert size['parts']['.gpu_pack'] == dict(bytes=9000, files=2)
    assert size['total_bytes'] == 1000 + 300 + gitignore + 9000
    # the copy a rehearsal runs in holds exactly what was counted
    copy = tmp_path / 'copy'
    gp.copy_travel(str(checkout), str(copy), ['.gpu_pack'])
    copied = {osp.relpath(osp.join(d, f), copy): osp.getsize(osp.join(d, f))
              for d, _, files in os.walk(copy) for f in files}
    assert sum(copied.values()) == size['total_bytes']
    assert not any(p.startswith('work_dirs') for p in copied)
    assert 'configs/new.py' in copied and '.gpu_pack/wheelhouse/w.whl' in copied


def test_the_harness_travels_with_the_checkout():
    """The entry in tools/ and the harness it runs in dev/ are part of what travels."""
    files = set(load('pack').git_travel_files(ROOT))
    assert {'tools/gpu_selfcheck.sh', 'dev/gpu_selfcheck/selfcheck.sh',
            'dev/gpu_selfcheck/selfcheck.py', 'dev/gpu_selfcheck/pack.py',
            'dev/gpu_selfcheck/study.py'} <= files


def test_travel_size_refuses_a_carried_path_that_travels_anyway(checkout):
    gp = load('pack')
    with pytest.raises(ValueError, match='not ignored by git'):
        gp.travel_size(str(checkout), ['tools'])
    with pytest.raises(ValueError, match='at most 8'):
        gp.travel_size(str(checkout), ['.gpu_pack'] * 9)


def test_pack_refuses_a_folder_git_does_not_ignore(checkout):
    gp = load('pack')
    with pytest.raises(SystemExit, match='git does not ignore it'):
        gp.pack(str(checkout / 'tools' / 'pack'), 'python3', None, root=str(checkout))


def test_check_out_names_each_broken_limit(tmp_path):
    gp = load('pack')
    ok = tmp_path / 'ok'
    for i in range(8):
        write(ok / f'f{i}', 10)
    with open(ok / 'f0', 'r+b') as f:
        f.truncate(16 << 20)  # exactly 16 MiB is allowed
    assert gp.check_out(str(ok)) == []
    bad = tmp_path / 'bad'
    for i in range(8):
        write(bad / f'f{i}', 10)
    write(bad / 'a' / 'b' / 'c' / 'deep', 10)  # a 9th file, 3 folder levels down
    with open(bad / 'f1', 'r+b') as f:
        f.truncate((16 << 20) + 1)
    problems = '\n'.join(gp.check_out(str(bad)))
    assert '9 files (at most 8)' in problems
    assert 'f1: 16.0 MiB (at most 16 MiB a file)' in problems
    assert 'a/b/c: 3 folder levels below OUT' in problems


def test_data_pack_holds_every_image_once_and_is_reproducible(image_folder, tmp_path):
    gp = load('pack')
    src = image_folder
    shutil.copytree(src / 'train', src / 'test')
    a, b = tmp_path / 'a.tar.gz', tmp_path / 'b.tar.gz'
    assert gp.pack_data(str(src), str(a)) == dict(train=18, test=18)
    gp.pack_data(str(src), str(b))
    assert gp.sha256(str(a)) == gp.sha256(str(b))
    import tarfile
    with tarfile.open(a) as tar:
        names = tar.getnames()
    assert len(names) == len(set(names)) == 36
    assert 'cifar10-jpg/train/class0/000.jpg' in names


def find_standin_base():
    """A CPython 3.12 to build the stand-in from (the script's own search, run here)."""
    r = subprocess.run(['bash', '-c', f'source <(sed -n "/^find_python312()/,/^}}/p" {SCRIPT})'
                        '; STANDIN_PYTHON=3.12 MMMSF_CACHE=/nonexistent find_python312'],
                       capture_output=True, text=True, timeout=120)
    return r.stdout.strip() if r.returncode == 0 else None


@pytest.mark.slow
def test_rehearsal_of_the_gpu_run_offline_on_a_python312_torch211_stand_in(tmp_path):
    """``--rehearse``: the stand-in (built once in ~/.cache/mmmsf), ``--pack``, then the printed
    command in a copy of what travels with no package index. Every step that needs no GPU
    runs; the CUDA-only ones are skipped by name; what comes back obeys the limits."""
    cache = os.environ.get('MMMSF_CACHE', osp.expanduser('~/.cache/mmmsf'))
    if not osp.isfile(osp.join(cache, 'standin-cp312-torch2.11.0', '.standin')) and \
            find_standin_base() is None:
        pytest.skip('no CPython 3.12 here to build the stand-in from (python3.12, pyenv, '
                    'uv), see dev/gpu_selfcheck/selfcheck.sh find_python312')
    if not osp.isdir(osp.join(ROOT, '..', 'shared', 'data', 'cifar10-jpg')) and \
            'MMMSF_STUDY_DATA' not in os.environ:
        pytest.skip('no CIFAR-10 images to pack (../shared/data/cifar10-jpg or '
                    'MMMSF_STUDY_DATA)')
    env = dict(os.environ, MMMSF_REHEARSAL_DIR=str(tmp_path), OMP_NUM_THREADS='1')
    r = subprocess.run(['nice', '-n', '19', 'bash', ENTRY, '--rehearse'], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=3600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert '[rehearse] PASSED' in out
    work = tmp_path / 'tree' / 'work_dirs' / 'gpu_selfcheck'
    steps = {s['name']: s for s in
             map(json.loads, (work / 'steps.jsonl').read_text().splitlines())}
    verdict = load('selfcheck')
    for name in verdict.REHEARSAL_RUNS:
        assert steps[name]['status'] == 'ok', steps[name]
    for name in verdict.REHEARSAL_SKIPS:
        assert (steps[name]['status'], steps[name]['why']) == ('skipped', 'cuda-only')
    came_back = sorted(os.listdir(tmp_path / 'OUT'))
    assert {'summary.md', 'summary.json', 'logs.tar.gz'} <= set(came_back)
    assert len(came_back) <= 8
    assert all(osp.getsize(tmp_path / 'OUT' / f) <= 16 << 20 for f in came_back)
    assert any(f.startswith('backbones_fp16.pt') for f in came_back)
    # the size report counted what the copy holds
    gp = load('pack')
    size = gp.travel_size(ROOT, ['.gpu_pack'])
    assert f'{size["total_mib"]:8.2f} MiB in all' in out
    assert size['total_bytes'] <= gp.TRAVEL_GOAL
    summary = json.loads((tmp_path / 'OUT' / 'summary.json').read_text())
    env = summary['environment']  # mmmsf.utils.collect_env's report, from the stand-in
    assert env['PyTorch'].startswith('2.11.0') and env['Python'].startswith('3.12')
    assert 'GCC' in env and 'collect_env' not in env  # mmengine's report served distutils
    assert summary['study_plan']['epochs'] == 1
