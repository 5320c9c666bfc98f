"""The public methods hooks use: CMSF.constraint, MSF.embed, LinearProbe.features,
PseudoLabelSelector.fit, get_ori_model."""
import pytest
import torch
import torch.nn.functional as F

from mmmsf.registry import MODELS
from mmmsf.utils.misc import get_ori_model
from tests.conftest import tiny_msf_cfg


def test_constraint_returns_the_parts_or_one_clear_error():
    km = MODELS.build(tiny_msf_cfg(type='CMSF', embedding_cache=dict(type='EmbeddingCache'),
                                   constrained_selector=dict(type='KMeansSelector')))
    sel, cache = km.constraint('kmeans')
    assert sel is km.constrained_selector and cache is km.embedding_cache
    with pytest.raises(ValueError, match="PseudoLabelHook needs a CMSF model with "
                                         "constrained_selector=dict.type='PseudoLabelSelector'"):
        km.constraint('pseudo_label', user='PseudoLabelHook')
    no_cache = MODELS.build(tiny_msf_cfg(type='CMSF',
                                         constrained_selector=dict(type='KMeansSelector')))
    with pytest.raises(ValueError, match='needs the embedding cache'):
        no_cache.constraint('kmeans')
    with pytest.raises(KeyError, match="'kmeans', 'pseudo_label'"):
        km.constraint('clusters')


def test_embed_is_the_normalised_backbone_or_target_feature():
    m = MODELS.build(tiny_msf_cfg()).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(m.embed(x), F.normalize(m.backbone(x).float(), dim=1))
        t = m.target_neck(m.target_backbone(x))
        assert torch.equal(m.embed(x, 'target'), F.normalize(t.float(), dim=1))
    with pytest.raises(KeyError, match="'backbone' or 'target'"):
        m.embed(x, 'online')


def test_linear_probe_features_take_the_first_view_or_precomputed_features():
    probe = MODELS.build(dict(type='LinearProbe', backbone=dict(
        type='ResNet', depth=18, stem='small', base_channels=8), num_classes=3))
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(probe.features([x, x + 1]), probe.extract_feat(x))
    pre = MODELS.build(dict(type='LinearProbe', backbone=None, num_classes=3, feat_dim=5))
    rows = [torch.randn(5) for _ in range(3)]
    assert torch.equal(pre.features(rows), torch.stack(rows))


def test_pseudo_label_fit_learns_separable_labels_and_is_seeded():
    sel = MODELS.build(dict(type='PseudoLabelSelector', num_classes=3, in_channels=8,
                            hid_channels=16))
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(3, 8, generator=g), dim=1)
    y = torch.arange(60) % 3
    x = F.normalize(centres[y] + 0.05 * torch.randn(60, 8, generator=g), dim=1)
    before = {k: v.clone() for k, v in sel.classifier.state_dict().items()}
    state, acc, loss = sel.fit(x, y, epochs=30, lr=0.1, batch_size=16, seed=3)
    assert acc == 1.0 and loss < 0.5
    for k, v in sel.classifier.state_dict().items():  # fit trains a copy
        assert torch.equal(v, before[k])
    again, _, _ = sel.fit(x, y, epochs=30, lr=0.1, batch_size=16, seed=3)
    assert all(torch.equal(state[k], again[k]) for k in state)
    sel.load_classifier(state)
    assert bool(sel.trained)


def test_get_ori_model_unwraps_a_wrapper_only():
    from mmengine.model import MMDistributedDataParallel  # noqa: F401  (registers the wrapper)
    m = MODELS.build(tiny_msf_cfg())
    assert get_ori_model(m) is m

    class Wrapped(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    from mmengine.registry import MODEL_WRAPPERS
    MODEL_WRAPPERS.register_module(module=Wrapped, force=True)
    assert get_ori_model(Wrapped(m)) is m
