"""The documentation resolves: every relative link and anchor in README.md, docs/**/*.md and
configs/**/README.md points at something that exists, and every ``python tools/...``,
``bash tools/...`` and ``python -m benchmarks....`` command they name is a file that answers
``--help`` (the benchmarks run as modules from the checkout's root, as ``python -m`` does).

Anchors follow GitHub's rules: the heading's text, lowercase, punctuation dropped, each space
turned into '-', and '-1', '-2', ... appended to repeated headings.
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
from typing import Dict, List, Set, Tuple
from urllib.parse import unquote

import pytest

from tests.conftest import ROOT

FENCE = re.compile(r'^\s*(```|~~~)')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
INLINE_CODE = re.compile(r'`[^`\n]*`')
COMMAND = re.compile(r'\b(python|bash)\s+((?:tools|benchmarks)/[\w./-]+)')
MODULE = re.compile(r'\bpython\s+-m\s+(benchmarks\.\w+)')
SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')

# Tools that must not be started by a test: they install, run the whole suite or train.
NEVER_RUN = {'tools/setup_env.sh', 'tools/demo.sh', 'tools/run_tests.sh'}
# Tools that stop with one line on the light install (no mmdet, no compiled mmcv ops).
DETECTION_TOOLS = {'tools/train_detection.py', 'tools/test_detection.py',
                   'tools/data/make_tiny_voc.py'}
# Named in the README before they land; checked like any other tool once the file exists.
PENDING: set = set()
# A bash tool that handles -h / --help itself, or hands every argument to a script that does
# (the others are only checked to exist).
BASH_HELP = re.compile(r'mmmsf_wants_help|--help\)|^exec bash .+ "\$@"$', re.M)

README_MAX_LINES = 250


def doc_files() -> List[str]:
    """README.md, docs/**/*.md and configs/**/README.md, relative to the repository root."""
    files = ['README.md']
    files += glob.glob('docs/**/*.md', root_dir=ROOT, recursive=True)
    files += glob.glob('configs/**/README.md', root_dir=ROOT, recursive=True)
    return sorted(set(f.replace(os.sep, '/') for f in files))


def read(rel: str) -> str:
    with open(osp.join(ROOT, rel), encoding='utf-8') as f:
        return f.read()


def prose_lines(text: str) -> List[Tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link: its text
    text = re.sub(r'<[^>]+>', '', text).strip().lower()  # inline HTML
    text = re.sub(r'[^\w\- ]', '', text)  # '_' stays, as on GitHub
    return text.replace(' ', '-')


def anchors(text: str) -> Set[str]:
    seen: Dict[str, int] = {}
    out = set()
    for _, line in prose_lines(text):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f'{base}-{n}')
    return out


def links(text: str) -> List[Tuple[int, str]]:
    """(line, target) of every markdown link and image outside code."""
    out = []
    for n, line in prose_lines(text):
        spans = [m.span() for m in INLINE_CODE.finditer(line)]
        for m in LINK.finditer(line):
            if not any(a <= m.start() < b for a, b in spans):
                out.append((n, m.group(1)))
    return out


def ignored_by_git(paths: List[str]) -> Set[str]:
    """The paths git ignores (a link to one works here but not in a clone); none without git."""
    if not paths:
        return set()
    try:
        out = subprocess.run(['git', 'check-ignore', '--stdin'], cwd=ROOT, input='\n'.join(paths),
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(out.stdout.split()) if out.returncode in (0, 1) else set()


def broken_links(files: List[str], root: str = ROOT) -> List[str]:
    """One message per link that does not resolve, as FILE:LINE: TARGET (why)."""
    cache: Dict[str, Set[str]] = {}
    problems, targets = [], []
    for rel in files:
        with open(osp.join(root, rel), encoding='utf-8') as f:
            text = f.read()
        for n, target in links(text):
            if SCHEME.match(target):
                continue  # http(s), mailto: not checked here
            path, _, anchor = target.partition('#')
            dest = osp.normpath(osp.join(osp.dirname(rel), unquote(path))) if path else rel
            where = f'{rel}:{n}: {target}'
            if dest.startswith('..') or osp.isabs(dest):
                problems.append(f'{where} (outside the repository)')
                continue
            if not osp.exists(osp.join(root, dest)):
                problems.append(f'{where} ({dest} does not exist)')
                continue
            targets.append((where, dest))
            if anchor and dest.endswith('.md'):
                if dest not in cache:
                    with open(osp.join(root, dest), encoding='utf-8') as f:
                        cache[dest] = anchors(f.read())
                if anchor not in cache[dest]:
                    problems.append(f'{where} (no heading #{anchor} in {dest}; it has: '
                                    f'{", ".join(sorted(cache[dest]))})')
    if root == ROOT:
        ignored = ignored_by_git(sorted({d for _, d in targets}))
        problems += [f'{w} ({d} is ignored by git)' for w, d in targets if d in ignored]
    return problems


def named_commands(files: List[str]) -> Dict[str, List[str]]:
    """{tools/... or benchmarks/... path: [FILE:LINE, ...]} of the commands the docs name
    (``python -m benchmarks.X`` names ``benchmarks/X.py``)."""
    out: Dict[str, List[str]] = {}
    for rel in files:
        for n, line in enumerate(read(rel).splitlines(), 1):
            for m in COMMAND.finditer(line):
                kind, path = m.group(1), m.group(2).rstrip('.')
                if kind == 'bash' and not path.startswith('tools/'):
                    continue
                out.setdefault(path, []).append(f'{rel}:{n}')
            for m in MODULE.finditer(line):
                out.setdefault(m.group(1).replace('.', '/') + '.py', []).append(f'{rel}:{n}')
    return out


def run_target(path: str) -> str:
    """What ``python`` is given to run ``path``: the module of a benchmark, else the file."""
    return path[:-len('.py')].replace('/', '.') if path.startswith('benchmarks/') else path


@pytest.fixture(scope='module')
def docs() -> List[str]:
    return doc_files()


@pytest.fixture(scope='module')
def commands(docs) -> Dict[str, List[str]]:
    found = named_commands(docs)
    # a pending tool is checked once its file exists
    return {p: w for p, w in found.items()
            if p not in PENDING or osp.isfile(osp.join(ROOT, p))}


def test_github_anchor_rules():
    assert slug("Where we differ from the authors' code") == 'where-we-differ-from-the-authors-code'
    assert slug('Does it learn? The CPU-hour CIFAR benchmark') == \
        'does-it-learn-the-cpu-hour-cifar-benchmark'
    assert slug('Sharded bank (goal: step ratio sharded / replicated <= 1.05 at 128K and 1M)') == \
        'sharded-bank-goal-step-ratio-sharded--replicated--105-at-128k-and-1m'
    assert slug('Results ([docs/study/table.md](docs/study/table.md))') == \
        'results-docsstudytablemd'
    assert slug('`train_cfg` keys') == 'train_cfg-keys'
    text = '# A\n```\n# not a heading\n```\n## A\n## B: c\n'
    assert anchors(text) == {'a', 'a-1', 'b-c'}


def test_the_checker_reports_what_does_not_resolve(tmp_path):
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'page.md').write_text('# Page\n\n## Two words\n')
    (tmp_path / 'README.md').write_text(
        '# Top\n'
        '[ok](docs/page.md#two-words) [self](#top) [web](https://example.org/x)\n'
        '[gone](docs/missing.md) [bad anchor](docs/page.md#three-words)\n'
        '`[in code](docs/missing.md)`\n'
        '```\n[in a block](nowhere.md)\n```\n'
        '[up](../../etc/passwd)\n')
    problems = broken_links(['README.md', 'docs/page.md'], root=str(tmp_path))
    assert len(problems) == 3, problems
    assert 'README.md:3: docs/missing.md (docs/missing.md does not exist)' in problems
    assert any('#three-words' in p and 'two-words' in p for p in problems)
    assert any('outside the repository' in p for p in problems)


def test_links_and_anchors_resolve(docs):
    assert {'README.md', 'docs/get_started.md', 'configs/msf/README.md'} <= set(docs)
    assert len(links(read('README.md'))) >= 20  # the README's index and tables are checked
    problems = broken_links(docs)
    assert not problems, 'links that do not resolve:\n' + '\n'.join(problems)


def test_named_commands_exist(docs, commands):
    assert {'tools/train.py', 'tools/dist_train.sh', 'tools/demo.sh', 'tools/run_tests.sh',
            'benchmarks/step_overhead.py'} <= set(commands)
    as_files = [f'{rel}:{n}' for rel in docs for n, line in enumerate(read(rel).splitlines(), 1)
                if re.search(r'\bpython\s+benchmarks/', line)]
    assert not as_files, ('benchmarks run as python -m benchmarks.NAME (from the checkout\'s '
                          'root), not as files:\n' + '\n'.join(as_files))
    missing = [f'{p} (named in {", ".join(w)})' for p, w in sorted(commands.items())
               if not osp.isfile(osp.join(ROOT, p))]
    assert not missing, 'commands named in the docs that do not exist:\n' + '\n'.join(missing)


def _help(cmd: List[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)


# Runs each tool given on the command line as ``python TOOL --help`` would (a name without '/' as
# ``python -m NAME --help`` from the current folder), each in a process of its own, forked from one that has imported torch, mmengine and mmmsf once (21 fresh
# interpreters would each spend ~2.5 CPU-seconds importing them); prints
# {tool: [exit status, stdout, stderr]} as JSON.
FORKED_HELP = r'''
import json, os, runpy, sys, tempfile, traceback
import torch, mmengine, mmmsf  # noqa: F401  (imported once, before the forks)
tools, running, results = sys.argv[1:], {}, {}
width = max(2, os.cpu_count() or 2)
def start(tool):
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        sys.stdout = os.fdopen(1, 'w'); sys.stderr = os.fdopen(2, 'w')
        sys.argv = [tool, '--help']
        code = 0
        try:
            if '/' in tool:
                sys.path[0] = os.path.dirname(os.path.abspath(tool))
                runpy.run_path(tool, run_name='__main__')
            else:
                sys.path[0] = os.getcwd()
                runpy.run_module(tool, run_name='__main__', alter_sys=True)
        except SystemExit as e:
            if isinstance(e.code, int) or e.code is None:
                code = e.code or 0
            else:
                print(e.code, file=sys.stderr); code = 1
        except BaseException:
            traceback.print_exc(); code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    running[pid] = (tool, out, err)
pending = list(tools)
while pending or running:
    while pending and len(running) < width:
        start(pending.pop(0))
    pid, status = os.wait()
    tool, out, err = running.pop(pid)
    out.seek(0); err.seek(0)
    results[tool] = [os.waitstatus_to_exitcode(status), out.read().decode(errors='replace'),
                     err.read().decode(errors='replace')]
print(json.dumps(results))
'''


def test_python_tools_answer_help(commands):
    from mmmsf.utils import detection_stack_missing
    no_detection = detection_stack_missing()
    tools = sorted(p for p in commands if p.endswith('.py') and osp.isfile(osp.join(ROOT, p)))
    assert len(tools) >= 20
    run = _help([sys.executable, '-c', FORKED_HELP] + [run_target(p) for p in tools])
    assert run.returncode == 0, run.stderr[-3000:]
    by_target = json.loads(run.stdout.strip().splitlines()[-1])
    results = {p: by_target[run_target(p)] for p in tools}
    assert sorted(by_target) == sorted(run_target(p) for p in tools)
    problems = []
    for path, (code, stdout, stderr) in sorted(results.items()):
        if path in DETECTION_TOOLS and no_detection:
            # the light install: one line that says how to get the detection stack
            if code != 1 or stderr.strip() != no_detection:
                problems.append(f'{path} --help on the light install: exit {code}, expected 1 '
                                f'and "{no_detection}"; stderr: {stderr[-500:]}')
        elif code != 0 or 'usage' not in stdout.lower():
            problems.append(f'{path} --help: exit {code}\n{stderr[-1500:]}')
    assert not problems, '\n'.join(problems)


def test_bash_tools_answer_help(commands):
    tools = sorted(p for p in commands if p.endswith('.sh'))
    checked = []
    for path in tools:
        if path in NEVER_RUN or not BASH_HELP.search(read(path)):
            continue
        out = _help(['bash', path, '--help'])
        assert out.returncode == 0, f'bash {path} --help: exit {out.returncode}\n{out.stderr}'
        assert out.stdout.strip(), f'bash {path} --help printed nothing'
        checked.append(path)
    assert {'tools/dist_train.sh', 'tools/gpu_selfcheck.sh'} <= set(checked)


def test_readme_is_a_front_page():
    text = read('README.md')
    assert len(text.splitlines()) <= README_MAX_LINES
    start = text.index('<!-- cifar-hour-table:start -->')
    assert text.index('<!-- cifar-hour-table:end -->') > start


def test_ci_runs_the_readme_test_command():
    text = read('README.md')
    section = text.split('\n## Tests\n', 1)[1].split('\n## ', 1)[0]
    block = re.search(r'```bash\n(.*?)\n```', section, re.S).group(1)
    readme_cmd = [line.strip() for line in block.splitlines() if line.strip()]
    assert readme_cmd == ['bash tools/run_tests.sh']
    ci = [line.strip() for line in read('.ci/run').splitlines()
          if line.strip() and not line.lstrip().startswith('#')
          and not line.startswith(('set ', 'cd '))]
    assert ci == readme_cmd


def test_forked_help_runner_reports_each_tools_exit_status(tmp_path):
    """The runner behind test_python_tools_answer_help sees what ``python TOOL --help`` gives."""
    good = tmp_path / 'good.py'
    good.write_text("import argparse\nargparse.ArgumentParser(prog='good').parse_args()\n")
    broken = tmp_path / 'broken.py'
    broken.write_text("import argparse\nfrom mmmsf.apis import no_such_name\n")
    says = tmp_path / 'says.py'
    says.write_text("raise SystemExit('build it first')\n")
    run = _help([sys.executable, '-c', FORKED_HELP, str(good), str(broken), str(says),
                 'benchmarks.search_kernel', 'benchmarks.no_such_benchmark'])
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert results[str(good)][0] == 0 and 'usage: good' in results[str(good)][1]
    assert results[str(broken)][0] == 1 and 'ImportError' in results[str(broken)][2]
    assert results[str(says)][0] == 1 and results[str(says)][2].strip() == 'build it first'
    # a module name runs as ``python -m`` would, from the checkout's root
    code, stdout, _ = results['benchmarks.search_kernel']
    assert code == 0 and 'usage:' in stdout and '--shapes' in stdout
    code, _, stderr = results['benchmarks.no_such_benchmark']
    assert code == 1 and 'No module named benchmarks.no_such_benchmark' in stderr
