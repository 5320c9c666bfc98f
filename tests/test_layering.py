"""The floor layering rules, read from every module's imports with ``ast``.

* ``mmmsf/utils`` and ``mmmsf/registry.py`` import no other mmmsf package;
* ``mmmsf/models`` and ``mmmsf/datasets`` import nothing from ``engine``, ``apis`` or tools;
* ``mmmsf/visualization`` imports no ``apis``;
* no module imports an mmmsf module inside a function (an import circle or a hidden
  dependency otherwise), except the cases of :data:`LOCAL_IMPORTS_ALLOWED`, each an optional
  dependency with its reason.
"""
import ast
import glob
import os.path as osp
from typing import Iterator, Tuple

import pytest

from tests.conftest import ROOT

PKG = osp.join(ROOT, 'mmmsf')


def imported_modules(path: str, root: str = ROOT) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import of the file, relative ones resolved."""
    package = osp.relpath(path, root)[:-len('.py')].split(osp.sep)[:-1]
    tree = ast.parse(open(path).read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = '.'.join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ''
            yield node.lineno, mod
            for a in node.names:  # ``from mmmsf import engine`` names a package too
                yield node.lineno, f'{mod}.{a.name}'


def files(sub: str):
    target = osp.join(PKG, sub)
    return [target] if target.endswith('.py') else sorted(
        glob.glob(osp.join(target, '**', '*.py'), recursive=True))


def violations(sub: str, forbidden) -> list:
    out = []
    for path in files(sub):
        for line, mod in imported_modules(path):
            if any(mod == f or mod.startswith(f + '.') for f in forbidden):
                out.append(f'{osp.relpath(path, ROOT)}:{line} imports {mod}')
    return out


OTHER_PACKAGES = ['mmmsf.' + osp.basename(osp.dirname(p)) for p in
                  glob.glob(osp.join(PKG, '*', '__init__.py'))]


def test_package_list_is_read():
    assert {'mmmsf.models', 'mmmsf.engine', 'mmmsf.utils', 'mmmsf.apis'} <= set(OTHER_PACKAGES)


@pytest.mark.parametrize('sub, forbidden', [
    ('utils', [p for p in OTHER_PACKAGES if p != 'mmmsf.utils'] + ['mmmsf.registry', 'tools']),
    ('registry.py', OTHER_PACKAGES + ['tools']),
    ('models', ['mmmsf.engine', 'mmmsf.apis', 'tools']),
    ('datasets', ['mmmsf.engine', 'mmmsf.apis', 'tools']),
    ('visualization', ['mmmsf.apis']),
])
def test_layering(sub, forbidden):
    assert files(sub), sub
    assert violations(sub, forbidden) == []


def test_the_check_sees_relative_and_absolute_imports(tmp_path):
    bad = tmp_path / 'mmmsf' / 'utils' / 'bad.py'
    bad.parent.mkdir(parents=True)
    bad.write_text('from ..models import MSF\nimport mmmsf.engine.hooks\nfrom . import misc\n')
    mods = [m for _, m in imported_modules(str(bad), str(tmp_path))]
    assert mods == ['mmmsf.models', 'mmmsf.models.MSF', 'mmmsf.engine.hooks', 'mmmsf.utils',
                    'mmmsf.utils.misc']


#: ``(file, imported module) -> why it is imported inside a function``: only modules that need
#: an optional part of the install (mmdet and mmcv's compiled ops, faiss) may be.
LOCAL_IMPORTS_ALLOWED = {}


def local_imports(path: str, root: str = ROOT) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every mmmsf import inside a function of the file."""
    tree = ast.parse(open(path).read(), filename=path)
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    lines = {n.lineno for f in funcs for n in ast.walk(f)
             if isinstance(n, (ast.Import, ast.ImportFrom))}
    seen = set()
    for line, mod in imported_modules(path, root):
        if line in lines and line not in seen and (mod == 'mmmsf' or mod.startswith('mmmsf.')):
            seen.add(line)  # the module a line names first (not each imported name)
            yield line, mod


def test_no_function_local_imports_of_mmmsf_modules():
    found = [f'{osp.relpath(path, ROOT)}:{line} imports {mod} inside a function'
             for path in files('') for line, mod in local_imports(path)
             if (osp.relpath(path, ROOT), mod) not in LOCAL_IMPORTS_ALLOWED]
    assert found == [], 'move them to the top of the module (or allow an optional dependency ' \
        'with its reason in LOCAL_IMPORTS_ALLOWED)'


def test_every_allowed_local_import_has_a_reason_and_exists():
    for (path, mod), reason in LOCAL_IMPORTS_ALLOWED.items():
        assert reason.strip(), path
        assert (path, mod) in {(osp.relpath(path, ROOT), m) for _, m in
                               local_imports(osp.join(ROOT, path))}, f'{path} no longer ' \
            f'imports {mod} in a function: drop it from LOCAL_IMPORTS_ALLOWED'


def test_the_check_sees_function_local_imports(tmp_path):
    mod = tmp_path / 'mmmsf' / 'apis' / 'lazy.py'
    mod.parent.mkdir(parents=True)
    mod.write_text('import os\nfrom mmmsf.registry import MODELS\n\n\n'
                   'def f():\n    import json\n    from ..evaluation import knn\n\n\n'
                   'class A:\n    def g(self):\n        import mmmsf.utils.misc\n')
    assert list(local_imports(str(mod), str(tmp_path))) == [(7, 'mmmsf.evaluation'),
                                                            (12, 'mmmsf.utils.misc')]
