"""The diagnostics have known answers on known inputs and leave training untouched."""

import math

import pytest
import torch
from torch import nn

from study.diagnostics import (
    eigen_alignment,
    grad_cosine,
    gradient_agreement,
    identity_distance,
    linear_weight,
    teacher_distance,
    weight_norm,
)
from study.engine import run_trial
from study.models import make_online
from study.teacher import make_teacher
from tests.conftest import tiny_config


def test_grad_cosine_of_identical_negated_and_orthogonal_gradients():
    g = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]]), None]
    assert grad_cosine(g, g) == pytest.approx(1.0)
    assert grad_cosine(g, [-t if t is not None else None for t in g]) == pytest.approx(-1.0)
    assert grad_cosine([torch.tensor([1.0, 0.0])], [torch.tensor([0.0, 5.0])]) == pytest.approx(0.0)
    assert math.isnan(grad_cosine([None], [torch.tensor([1.0])]))


def _views(cfg, n=32):
    torch.manual_seed(0)
    online = make_online(cfg.model)
    teacher = make_teacher(online.encoder)
    with torch.no_grad():  # a teacher that differs from the online net, as after some training
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return online, teacher, torch.randn(n, 3, 16, 16), torch.randn(n, 3, 16, 16)


def test_gradient_agreement_is_one_when_raft_equals_byol_and_minus_one_when_negated():
    # With a `none` predictor and alpha = 0, RAFT's loss is -beta * L_cross. Its gradient is BYOL's
    # only if the views are equal (then cross-view = same-view): beta = -1 gives +1, beta = 1 gives -1.
    cfg = tiny_config(model={"predictor": "none"})
    online, teacher, x, _ = _views(cfg)
    same = gradient_agreement(online, teacher, x, x, alpha=0.0, beta=-1.0)
    opposite = gradient_agreement(online, teacher, x, x, alpha=0.0, beta=1.0)
    assert same["grad_cos"] == pytest.approx(1.0, abs=1e-6)
    assert opposite["grad_cos"] == pytest.approx(-1.0, abs=1e-6)
    assert same["grad_cos_encoder"] == pytest.approx(1.0, abs=1e-6) and "grad_cos_predictor" not in same
    # on two different views the two objectives differ
    online, teacher, x1, x2 = _views(cfg)
    assert gradient_agreement(online, teacher, x1, x2, 1.0, 1.0)["grad_cos"] < 0.99


def test_gradient_agreement_leaves_batchnorm_buffers_and_grads_alone():
    cfg = tiny_config(model={"predictor": "mlp"})
    online, teacher, x1, x2 = _views(cfg)
    before = {k: v.clone() for k, v in {**online.state_dict(), **teacher.state_dict()}.items()}
    out = gradient_agreement(online, teacher, x1, x2, 1.0, 1.0)
    after = {**online.state_dict(), **teacher.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in online.parameters())
    assert set(out) == {"grad_cos", "grad_cos_encoder", "grad_cos_projector", "grad_cos_predictor"}


def test_predictor_diagnostics_on_known_matrices():
    eye = torch.eye(4)
    assert identity_distance(eye) == 0.0 and identity_distance(torch.zeros(4, 4)) == pytest.approx(1.0)
    # inputs whose correlation has eigenvectors e1..e4 (distinct variances)
    z = torch.randn(4000, 4) * torch.tensor([4.0, 3.0, 2.0, 1.0])
    diag = torch.diag(torch.tensor([2.0, 1.0, 0.5, 0.1]))
    assert eigen_alignment(diag, z) == pytest.approx(1.0, abs=0.02)  # shares the eigenvectors
    swap = torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
    assert eigen_alignment(swap, z) < 0.1  # maps each eigenvector onto another one
    assert weight_norm(nn.Identity()) == 0
    lin = nn.Linear(3, 3)
    with torch.no_grad():
        lin.weight.fill_(2.0)
    assert weight_norm(lin) == pytest.approx(6.0)
    assert linear_weight(lin) is lin.weight and linear_weight(nn.Sequential(lin, nn.BatchNorm1d(3))) is lin.weight
    assert linear_weight(nn.Identity()) is None


def test_teacher_distance():
    a, b = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        a.weight.fill_(1.0)
        b.weight.fill_(1.0)
        assert teacher_distance(a, b) == 0.0
        b.weight.fill_(0.0)
    assert teacher_distance(a, b) == pytest.approx(1.0)


DIAG_KEYS = ("grad_cos", "z_rank", "teacher_dist", "pred_weight_norm", "pred_identity_dist", "pred_eig_align")


def test_diagnostics_change_no_training_result():
    base = dict(train={"epochs": 2}, eval={"random_init_baseline": False}, model={"predictor": "linear"})
    off = run_trial(tiny_config(**base))
    on = run_trial(tiny_config(**base, diagnostics={"every": 1, "batch_size": 64}))
    timing = ("epoch_seconds", "images_per_s")
    strip = lambda m: {k: v for k, v in m.items() if k not in timing and k not in DIAG_KEYS and not k.startswith("grad_cos")}  # noqa: E731
    assert [strip(h) for h in on.history] == [strip(h) for h in off.history]
    assert strip(on.metrics) == strip(off.metrics)
    assert all(all(k in h for k in DIAG_KEYS) for h in on.history)
    assert not any(k in h for h in off.history for k in DIAG_KEYS)
    assert -1.0 <= on.history[-1]["grad_cos"] <= 1.0 and on.history[-1]["z_rank"] > 1.0
