"""Networks: backbones, the projector, and the predictor kinds.

Backbones map images to a feature vector. `resnet18` is torchvision's ResNet-18 with the CIFAR stem
(3x3 conv, stride 1, no max-pool), as in the RAFT authors' CIFAR code; `convnet` is a small
conv-BN-ReLU-pool stack that trains in minutes on two CPU cores.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import resnet18

from study.config import ModelConfig


class ConvNet(nn.Module):
    """`depth` blocks of conv3x3-BN-ReLU-maxpool, channels width * 2**i, then global average pool."""

    def __init__(self, width: int, depth: int, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(depth):
            c_out = width * 2**i
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = c_in

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def resnet18_cifar() -> nn.Module:
    """ResNet-18 with the CIFAR stem; its output is the 512-d pooled feature."""
    net = resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.out_dim = 512
    return net


def make_backbone(cfg: ModelConfig) -> nn.Module:
    if cfg.backbone == "convnet":
        return ConvNet(cfg.width, cfg.depth)
    if cfg.backbone == "resnet18":
        return resnet18_cifar()
    raise ValueError(f"unknown backbone {cfg.backbone!r}")


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear, the BYOL/RAFT head."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
    )


def make_predictor(kind: str, dim: int, hidden: int, identity_init: bool) -> nn.Module:
    """none (identity map), linear, linear_bn (linear then BatchNorm) or mlp."""
    if kind == "none":
        return nn.Identity()
    if kind == "mlp":
        return mlp(dim, hidden, dim)
    if kind not in ("linear", "linear_bn"):
        raise ValueError(f"unknown predictor {kind!r}")
    linear = nn.Linear(dim, dim)
    if identity_init:
        with torch.no_grad():
            linear.weight.copy_(torch.eye(dim))
            linear.bias.zero_()
    return linear if kind == "linear" else nn.Sequential(linear, nn.BatchNorm1d(dim))


class Encoder(nn.Module):
    """Backbone + projector: the part the Mean Teacher copies."""

    def __init__(self, backbone: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.backbone(x))


class OnlineNet(nn.Module):
    """The online network, split into the encoder the teacher averages and the predictor it lacks."""

    def __init__(self, encoder: Encoder, predictor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Projection z and prediction p of a batch."""
        z = self.encoder(x)
        return z, self.predictor(z)


def make_online(cfg: ModelConfig) -> OnlineNet:
    backbone = make_backbone(cfg)
    projector = mlp(backbone.out_dim, cfg.proj_hidden, cfg.proj_dim)
    predictor = make_predictor(cfg.predictor, cfg.proj_dim, cfg.pred_hidden, cfg.pred_identity_init)
    return OnlineNet(Encoder(backbone, projector), predictor)
