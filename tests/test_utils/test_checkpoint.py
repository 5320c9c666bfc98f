"""The one safe checkpoint reader and the backbone-prefix selector."""
import argparse

import pytest
import torch

from mmmsf.utils.checkpoint import load_state_dict, read_checkpoint, select_prefix


def test_reads_mmengine_and_bare_state_dicts(tmp_path):
    w = torch.randn(3, 2)
    torch.save(dict(state_dict={'module.backbone.w': w, 'step': 3}, meta=dict(epoch=2)),
               tmp_path / 'a.pth')
    state, meta = read_checkpoint(str(tmp_path / 'a.pth'))
    assert list(state) == ['backbone.w'] and torch.equal(state['backbone.w'], w)
    assert meta == dict(epoch=2)
    torch.save({'conv1.weight': w}, tmp_path / 'b.pth')
    assert list(load_state_dict(str(tmp_path / 'b.pth'))) == ['conv1.weight']


def test_bad_files_get_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_checkpoint(str(tmp_path / 'missing.pth'))
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    with pytest.raises(ValueError, match='not a readable PyTorch checkpoint'):
        read_checkpoint(str(tmp_path / 'text.pth'))
    torch.save([torch.zeros(1)], tmp_path / 'list.pth')
    with pytest.raises(ValueError, match='holds a list, not a state dict'):
        read_checkpoint(str(tmp_path / 'list.pth'))
    torch.save({'epoch': 3}, tmp_path / 'empty.pth')
    with pytest.raises(ValueError, match='holds no tensors'):
        read_checkpoint(str(tmp_path / 'empty.pth'))


def test_authors_layout_is_recognised_and_sent_to_the_converter(tmp_path):
    torch.save(dict(state_dict={'encoder_q.module.conv1.weight': torch.zeros(1)},
                    opt=argparse.Namespace(lr=0.05)), tmp_path / 'authors.pth')
    state, _ = read_checkpoint(str(tmp_path / 'authors.pth'))
    with pytest.raises(KeyError, match='authors_to_mmmsf.py'):
        select_prefix(state, 'backbone.', 'authors.pth')
    assert list(select_prefix({'fc.w': 1, 'conv1.w': 2}, '')) == ['conv1.w']
