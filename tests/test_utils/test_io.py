"""atomic_write_json: the same bytes as json.dump, replaces in place, never a half-written or
leftover file."""
import json
import os

import pytest

from mmmsf.utils.io import atomic_write_json


def test_writes_json_dump_bytes_and_creates_the_folder(tmp_path):
    path = tmp_path / 'new' / 'eval' / 'r.json'
    obj = {'b': [1, 2.5, None], 'a': {'x': 'é'}}
    assert atomic_write_json(str(path), obj, indent=1) == str(path)
    assert path.read_text() == json.dumps(obj, indent=1)
    assert os.listdir(path.parent) == ['r.json']


def test_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'r.json'
    atomic_write_json(str(path), {'v': 1})
    atomic_write_json(str(path), {'v': 2}, fsync=True, indent=2)
    assert json.loads(path.read_text()) == {'v': 2}
    assert os.listdir(tmp_path) == ['r.json']


def test_unserialisable_object_raises_and_keeps_the_old_file(tmp_path):
    path = tmp_path / 'r.json'
    atomic_write_json(str(path), {'v': 1}, indent=1)
    old = path.read_bytes()
    with pytest.raises(TypeError, match='not JSON serializable'):
        atomic_write_json(str(path), {'v': 2, 'bad': object()}, indent=1)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ['r.json']
    # with a default= the same object is written
    atomic_write_json(str(path), {'bad': object()}, default=lambda o: 'obj')
    assert json.loads(path.read_text()) == {'bad': 'obj'}
