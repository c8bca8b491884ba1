import pytest
import torch

from study.config import ModelConfig
from study.models import make_backbone, make_online, make_predictor


@pytest.mark.parametrize("kind", ["none", "linear", "linear_bn", "mlp"])
def test_predictor_kinds_keep_dimension(kind):
    pred = make_predictor(kind, 8, 16, identity_init=False)
    assert pred(torch.randn(5, 8)).shape == (5, 8)


def test_none_is_identity_and_has_no_parameters():
    pred = make_predictor("none", 8, 16, identity_init=False)
    x = torch.randn(4, 8)
    assert torch.equal(pred(x), x) and not list(pred.parameters())


def test_identity_init_of_linear_kinds():
    x = torch.randn(6, 8)
    assert torch.allclose(make_predictor("linear", 8, 16, identity_init=True)(x), x)
    lin_bn = make_predictor("linear_bn", 8, 16, identity_init=True)
    assert torch.equal(lin_bn[0].weight, torch.eye(8))
    assert not torch.allclose(make_predictor("linear", 8, 16, identity_init=False)(x), x)


def test_mlp_predictor_structure():
    layers = [type(m).__name__ for m in make_predictor("mlp", 8, 16, identity_init=False)]
    assert layers == ["Linear", "BatchNorm1d", "ReLU", "Linear"]


def test_convnet_widths_and_resnet_cifar_stem():
    conv = make_backbone(ModelConfig(backbone="convnet", width=8, depth=3))
    assert conv(torch.randn(2, 3, 16, 16)).shape == (2, 32) and conv.out_dim == 32
    res = make_backbone(ModelConfig(backbone="resnet18"))
    assert res.conv1.kernel_size == (3, 3) and res.conv1.stride == (1, 1)
    assert isinstance(res.maxpool, torch.nn.Identity)
    assert res(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_online_net_outputs():
    net = make_online(ModelConfig(width=8, depth=2, proj_hidden=32, proj_dim=16, pred_hidden=32))
    z, p = net(torch.randn(4, 3, 16, 16))
    assert z.shape == p.shape == (4, 16)
