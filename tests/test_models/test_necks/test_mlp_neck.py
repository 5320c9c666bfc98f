"""MLPNeck: the reference layout, and the optional BN on the output (out_bn)."""
import torch

from mmmsf.models.necks import MLPNeck


def test_reference_layout_and_output_bn():
    torch.manual_seed(0)
    plain = MLPNeck(8, 16, 4)
    assert [type(m).__name__ for m in plain.mlp] == ['Linear', 'BatchNorm1d', 'ReLU', 'Linear']
    neck = MLPNeck(8, 16, 4, out_bn=True)
    assert isinstance(neck.mlp[4], torch.nn.BatchNorm1d) and not neck.mlp[4].affine
    y = neck(torch.randn(32, 8) * 3 + 5)  # train mode: each dimension centred and scaled
    torch.testing.assert_close(y.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    # the authors' keys stay where they are
    assert set(plain.state_dict()) <= set(neck.state_dict())
