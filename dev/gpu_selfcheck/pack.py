"""What travels to a GPU machine without a package index, and what may come back from it.

    python dev/gpu_selfcheck/pack.py pack DIR --python PY --data SRC  # wheelhouse, images, manifest
    python dev/gpu_selfcheck/pack.py travel-size --carry DIR   # bytes that travel, by part
    python dev/gpu_selfcheck/pack.py check-out DIR             # what comes back fits the limits

``pack`` models the target machine by the interpreter ``PY`` (the machine's own Python, or a
stand-in holding the same torch): the wheelhouse holds, for PY's CPython version on manylinux
x86-64, exactly the packages of ``requirements/`` that PY cannot import, with the pure-Python
dependencies PY lacks, one version of each (pip's resolver against PY's installed packages),
minus what the machine covers otherwise (its ``opencv-python-headless`` provides ``cv2``) and
with faiss-cpu (19 MB: the CPU search, k-means and the CPU halves of the tests) instead of
faiss-gpu (~1.9 GB of CUDA 12 libraries: the GPU run uses the torch search and says so).
The images of ``SRC`` (an ImageFolder with train/ and test/) become one ``.tar.gz``.
"""
import argparse
import gzip
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MIB = 1 << 20

# The machine we can get (docs/gpu_selfcheck.md): what travels and what comes back.
TRAVEL_LIMIT = 64 * MIB
TRAVEL_GOAL = 56 * MIB
MAX_CARRY = 8
OUT_MAX_FILES = 8
OUT_MAX_FILE_BYTES = 16 * MIB
OUT_MAX_DEPTH = 2  # folders below OUT

REQUIREMENT_FILES = ('runtime.txt', 'mmcv-lite.txt', 'tests.txt', 'faiss-cpu.txt')
# kept as the machine has them (they must fit its torch and numpy)
KEEP = ('torch', 'torchvision', 'numpy', 'setuptools', 'pip', 'wheel')
# left out of the wheelhouse, with the reason the self-check reports
LEFT_OUT = {
    'faiss-gpu': 'faiss-gpu brings ~1.9 GB of CUDA 12 wheels (nvidia-*-cu12), far over the '
                 '64 MiB that travel: the GPU run uses the torch search',
}
# a requirement that another installed distribution provides (same import name)
PROVIDED = {'opencv-python': ('cv2', 'opencv-python-headless or another OpenCV build')}
IMPORT_NAMES = {'opencv-python': 'cv2', 'scikit-learn': 'sklearn', 'mmcv-lite': 'mmcv',
                'pyyaml': 'yaml', 'faiss-gpu': 'faiss', 'faiss-cpu': 'faiss'}
DATA_FILE = 'cifar10-jpg.tar.gz'
WHEELHOUSE = 'wheelhouse'
MANIFEST = 'pack.json'


def _log(msg: str) -> None:
    print(f'[gpu_pack] {msg}', file=sys.stderr, flush=True)


def canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


# ---------------------------------------------------------------------------- travel size
def git_travel_files(root: str) -> List[str]:
    """The files that travel with a checkout: tracked ones and untracked ones git does not
    ignore (relative paths; deleted tracked files left out)."""
    out = subprocess.run(['git', '-C', root, 'ls-files', '-z', '--cached', '--others',
                          '--exclude-standard'], capture_output=True, check=True).stdout
    names = sorted({n for n in out.decode().split('\0') if n})
    return [n for n in names if osp.isfile(osp.join(root, n)) and
            not osp.islink(osp.join(root, n))]


def _tree_bytes(path: str) -> Tuple[int, int]:
    """Bytes and number of the regular files under ``path`` (or of the file itself)."""
    if osp.isfile(path):
        return osp.getsize(path), 1
    total = count = 0
    for d, _, files in os.walk(path):
        for f in files:
            p = osp.join(d, f)
            if osp.isfile(p) and not osp.islink(p):
                total += osp.getsize(p)
                count += 1
    return total, count


def travel_size(root: str, carry: Sequence[str] = ()) -> Dict:
    """What travels: the checkout's files (``git_travel_files``) plus each carried path (an
    ignored folder or file, relative to ``root``); the ignored build outputs do not count."""
    if len(carry) > MAX_CARRY:
        raise ValueError(f'{len(carry)} carried paths: at most {MAX_CARRY} travel.')
    files = git_travel_files(root)
    tree = sum(osp.getsize(osp.join(root, f)) for f in files)
    parts = {'checkout (tracked + untracked, not ignored)': dict(bytes=tree, files=len(files))}
    tracked = set(files)
    for c in carry:
        p = osp.join(root, c)
        if not osp.exists(p):
            raise FileNotFoundError(f'carried path {c} does not exist under {root}.')
        if c in tracked or any(f.startswith(c.rstrip('/') + '/') for f in tracked):
            raise ValueError(f'carried path {c} is not ignored by git: it would travel twice.')
        b, n = _tree_bytes(p)
        parts[c] = dict(bytes=b, files=n)
    total = sum(v['bytes'] for v in parts.values())
    return dict(parts=parts, total_bytes=total, total_mib=round(total / MIB, 2),
                limit_mib=TRAVEL_LIMIT // MIB, goal_mib=TRAVEL_GOAL // MIB,
                within_goal=total <= TRAVEL_GOAL, within_limit=total <= TRAVEL_LIMIT)


def format_travel(size: Dict) -> str:
    lines = ['What travels (bytes of the files as they are copied):']
    for name, v in size['parts'].items():
        lines.append(f'  {v["bytes"] / MIB:8.2f} MiB  {v["files"]:6d} files  {name}')
    verdict = ('within the goal' if size['within_goal'] else
               'over the goal, within the limit' if size['within_limit'] else 'OVER THE LIMIT')
    lines.append(f'  {size["total_mib"]:8.2f} MiB in all ({verdict}: goal <= {size["goal_mib"]} '
                 f'MiB, limit {size["limit_mib"]} MiB)')
    return '\n'.join(lines)


def copy_travel(root: str, dst: str, carry: Sequence[str] = ()) -> Dict:
    """Copy exactly what ``travel_size`` counts into ``dst`` (a rehearsal's checkout)."""
    size = travel_size(root, carry)
    for f in git_travel_files(root) + [c for c in carry if osp.isfile(osp.join(root, c))]:
        os.makedirs(osp.dirname(osp.join(dst, f)) or dst, exist_ok=True)
        shutil.copy2(osp.join(root, f), osp.join(dst, f))
    for c in carry:
        if osp.isdir(osp.join(root, c)):
            shutil.copytree(osp.join(root, c), osp.join(dst, c), symlinks=True,
                            dirs_exist_ok=True)
    return size


# ---------------------------------------------------------------------------- check-out
def check_out(d: str) -> List[str]:
    """Problems of what comes back from ``d``: more than 8 files, a file over 16 MiB, a folder
    more than 2 levels below ``d``, a link or something not a plain file."""
    problems, files = [], []
    for cur, dirs, names in os.walk(d):
        depth = 0 if cur == d else osp.relpath(cur, d).count(os.sep) + 1
        if depth > OUT_MAX_DEPTH:
            problems.append(f'{osp.relpath(cur, d)}: {depth} folder levels below OUT '
                            f'(at most {OUT_MAX_DEPTH})')
        for n in names + [x for x in dirs if osp.islink(osp.join(cur, x))]:
            p = osp.join(cur, n)
            rel = osp.relpath(p, d)
            if osp.islink(p) or not osp.isfile(p):
                problems.append(f'{rel}: not a plain file')
                continue
            files.append(rel)
            if osp.getsize(p) > OUT_MAX_FILE_BYTES:
                problems.append(f'{rel}: {osp.getsize(p) / MIB:.1f} MiB (at most '
                                f'{OUT_MAX_FILE_BYTES // MIB} MiB a file)')
    if len(files) > OUT_MAX_FILES:
        problems.append(f'{len(files)} files (at most {OUT_MAX_FILES}): {", ".join(sorted(files))}')
    return problems


# ---------------------------------------------------------------------------- pack
def requirement_specs(root: str = ROOT) -> Dict[str, str]:
    """``canonical name -> requirement line`` of the requirement files the self-check needs."""
    specs: Dict[str, str] = {}
    for name in REQUIREMENT_FILES:
        with open(osp.join(root, 'requirements', name)) as f:
            for line in f:
                line = line.split('#')[0].strip()
                if line:
                    specs[canonical(re.split(r'[=<>!~ ;\[]', line)[0])] = line
    return specs


def _probe(py: str, code: str) -> str:
    return subprocess.run([py, '-c', code], capture_output=True, text=True, check=True).stdout


def target_of(py: str) -> Dict:
    """CPython version, ABI tag, and the importable modules of the interpreter ``py``."""
    info = json.loads(_probe(py, 'import json, sys, sysconfig, platform; print(json.dumps(dict('
                                 'version="%d.%d" % sys.version_info[:2], '
                                 'implementation=sys.implementation.name, '
                                 'machine=platform.machine(), '
                                 'executable=sys.executable)))'))
    if info['implementation'] != 'cpython' or info['machine'] != 'x86_64':
        raise SystemExit(f'{py}: the pack is for CPython on x86-64 (manylinux), not '
                         f'{info["implementation"]} on {info["machine"]}.')
    return info


def importable(py: str, modules: Sequence[str]) -> Dict[str, bool]:
    code = ('import importlib.util, json, sys; print(json.dumps({m: importlib.util.find_spec(m) '
            'is not None for m in sys.argv[1:]}))')
    out = subprocess.run([py, '-c', code, *modules], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def missing_specs(py: str, root: str = ROOT) -> Tuple[List[str], Dict[str, str]]:
    """The requirement lines ``py`` cannot import, and what is left out (name -> why)."""
    specs = requirement_specs(root)
    wanted = {n: s for n, s in specs.items() if n not in KEEP}
    found = importable(py, [IMPORT_NAMES.get(n, n.replace('-', '_')) for n in wanted])
    missing, left_out = [], {}
    for n, spec in wanted.items():
        if found[IMPORT_NAMES.get(n, n.replace('-', '_'))]:
            continue
        if n in LEFT_OUT:
            left_out[n] = LEFT_OUT[n]
        else:
            missing.append(spec)
    left_out.setdefault('faiss-gpu', LEFT_OUT['faiss-gpu'])
    return missing, left_out


def pip_env() -> Dict[str, str]:
    """The environment of the pack's pip calls: this machine's pip configuration, no
    constraints on what the target already has."""
    return dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK='1')


def resolve(py: str, specs: Sequence[str]) -> List[Tuple[str, str]]:
    """(name, version) of what pip would install into ``py`` for ``specs``: the specs and their
    dependencies that ``py`` lacks (a dry run against its installed packages)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = osp.join(tmp, 'report.json')
        r = subprocess.run([py, '-m', 'pip', 'install', '--dry-run', '--quiet',
                            '--only-binary=:all:', '--report', report, *specs],
                           capture_output=True, text=True, env=pip_env())
        if r.returncode != 0:
            raise SystemExit(f'pip cannot resolve {" ".join(specs)} for {py}:\n'
                             + r.stderr[-3000:])
        with open(report) as f:
            items = json.load(f)['install']
    return sorted((canonical(i['metadata']['name']), i['metadata']['version']) for i in items)


def download(py: str, target: Dict, pins: Sequence[Tuple[str, str]], dst: str) -> None:
    """Wheels of exactly ``pins`` (no dependencies) for the target's CPython on manylinux."""
    ver = target['version'].replace('.', '')
    plats = [f'manylinux_2_{m}_x86_64' for m in range(28, 16, -1)] + ['manylinux2014_x86_64',
                                                                         'linux_x86_64']
    cmd = [sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
           '--only-binary=:all:', '--python-version', target['version'],
           '--implementation', 'cp', '--abi', f'cp{ver}', '--abi', 'abi3', '--abi', 'none',
           '-d', dst]
    for p in plats:
        cmd += ['--platform', p]
    r = subprocess.run(cmd + [f'{n}=={v}' for n, v in pins], capture_output=True, text=True,
                       env=pip_env())
    if r.returncode != 0:
        raise SystemExit('pip download failed:\n' + r.stderr[-3000:])


def _wheel_name(path: str) -> str:
    return canonical(osp.basename(path).split('-')[0])


def pack_data(src: str, out: str) -> Dict:
    """``src``'s train/ and test/ images as one gzip'ed tar (paths ``cifar10-jpg/...``,
    sorted, fixed times: the same images give the same file)."""
    for sub in ('train', 'test'):
        if not osp.isdir(osp.join(src, sub)):
            raise SystemExit(f'--data {src}: no {sub}/ folder (an ImageFolder with train/ and '
                             'test/ is needed).')
    counts = {}
    tmp = out + '.tmp'
    with open(tmp, 'wb') as raw, gzip.GzipFile('', 'wb', 6, raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode='w') as tar:
        for sub in ('train', 'test'):
            n = 0
            for d, dirs, files in os.walk(osp.join(src, sub)):
                dirs.sort()
                for f in sorted(files):
                    p = osp.join(d, f)
                    info = tar.gettarinfo(p, arcname=osp.join(
                        'cifar10-jpg', osp.relpath(p, src)))
                    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, '', ''
                    with open(p, 'rb') as fh:
                        tar.addfile(info, fh)
                    n += 1
            counts[sub] = n
    os.replace(tmp, out)
    return counts


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def pack(dst: str, py: str, data: Optional[str], root: str = ROOT) -> Dict:
    """Fill ``dst`` (inside ``root``, ignored by git) with the wheelhouse and the images."""
    dst = osp.abspath(dst)
    rel = osp.relpath(dst, root)
    if rel.startswith('..'):
        raise SystemExit(f'--pack {dst}: the pack must lie inside the checkout ({root}).')
    os.makedirs(dst, exist_ok=True)
    ignored = subprocess.run(['git', '-C', root, 'check-ignore', '-q', rel + '/']).returncode == 0
    if not ignored:
        raise SystemExit(f'--pack {rel}: git does not ignore it, so it would travel as part of '
                         'the checkout and count twice; add it to .gitignore.')
    target = target_of(py)
    missing, left_out = missing_specs(py, root)
    _log(f'{py} (CPython {target["version"]}) lacks: {", ".join(missing) or "nothing"}')
    pins = resolve(py, missing) if missing else []
    provided = {}
    for name, (module, by) in PROVIDED.items():
        if any(n == name for n, _ in pins) and importable(py, [module])[module]:
            provided[name] = f'`import {module}` works on the machine ({by})'
    pins = [(n, v) for n, v in pins if n not in provided and n not in LEFT_OUT]
    wh = osp.join(dst, WHEELHOUSE)
    os.makedirs(wh, exist_ok=True)
    for f in os.listdir(wh):  # one version of each: nothing left from an older pack
        os.remove(osp.join(wh, f))
    if pins:
        download(py, target, pins, wh)
    wheels = sorted(f for f in os.listdir(wh) if f.endswith('.whl'))
    got = {_wheel_name(w) for w in wheels}
    lost = [n for n, _ in pins if n not in got]
    if lost or len(wheels) != len(pins):
        raise SystemExit(f'the wheelhouse does not hold one wheel per package: missing {lost}, '
                         f'holds {wheels}')
    manifest = dict(python=target['version'], model_interpreter=target['executable'],
                    wheels=wheels, pins=[f'{n}=={v}' for n, v in pins],
                    left_out=left_out, provided_by_the_machine=provided,
                    wheelhouse_bytes=sum(osp.getsize(osp.join(wh, w)) for w in wheels))
    if data:
        out = osp.join(dst, DATA_FILE)
        _log(f'packing the images of {data} into {osp.relpath(out, root)} ...')
        manifest['data'] = dict(file=DATA_FILE, source=osp.abspath(data),
                                images=pack_data(data, out), bytes=osp.getsize(out),
                                sha256=sha256(out))
    for path in (osp.join(dst, MANIFEST), osp.join(wh, MANIFEST)):  # the self-check reads
        with open(path, 'w') as f:  # the wheelhouse's copy: install these wheels as they are
            json.dump(manifest, f, indent=1)
    manifest['travel'] = travel_size(root, [rel])
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    k = sub.add_parser('pack', help='wheelhouse + packed images + manifest in DIR')
    k.add_argument('dir')
    k.add_argument('--python', required=True, help='the target machine\'s interpreter, or a '
                   'stand-in with its torch')
    k.add_argument('--data', help='ImageFolder with train/ and test/ to pack')
    t = sub.add_parser('travel-size', help='bytes that travel: checkout + carried paths')
    t.add_argument('--root', default=ROOT)
    t.add_argument('--carry', nargs='*', default=[])
    t.add_argument('--json', action='store_true')
    y = sub.add_parser('copy-travel', help='copy what travels into DEST')
    y.add_argument('dest')
    y.add_argument('--root', default=ROOT)
    y.add_argument('--carry', nargs='*', default=[])
    c = sub.add_parser('check-out', help='exit 1 if DIR breaks the limits of what comes back')
    c.add_argument('dir')
    a = p.parse_args(argv)
    if a.cmd == 'pack':
        m = pack(a.dir, a.python, a.data)
        print(json.dumps({k: v for k, v in m.items() if k != 'travel'}, indent=1))
        print(format_travel(m['travel']))
        return 0 if m['travel']['within_limit'] else 1
    if a.cmd == 'travel-size':
        size = travel_size(a.root, a.carry)
        print(json.dumps(size, indent=1) if a.json else format_travel(size))
        return 0 if size['within_limit'] else 1
    if a.cmd == 'copy-travel':
        size = copy_travel(a.root, a.dest, a.carry)
        print(format_travel(size))
        return 0
    problems = check_out(a.dir)
    for pr in problems:
        print(f'[check-out] {pr}')
    if not problems:
        print(f'[check-out] {a.dir}: within the limits ({OUT_MAX_FILES} files, '
              f'{OUT_MAX_FILE_BYTES // MIB} MiB each, {OUT_MAX_DEPTH} folder levels)')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
