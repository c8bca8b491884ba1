import math

import pytest
import torch

from study.losses import align_loss, byol_loss, cross_loss, loss_terms, raft_loss

# Hand-made vectors with known cosines (2-d, deliberately unnormalised):
# p1 = (2, 0) -> e1; p2 = (0, 3) -> e2; z1 = (1, 1) -> 45 deg; z2 = (-5, 0) -> -e1.
P1, P2 = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0]])
Z1, Z2 = torch.tensor([[1.0, 1.0]]), torch.tensor([[-5.0, 0.0]])
C = 1 / math.sqrt(2)
# cos(p1,p2)=0, cos(p1,z2)=-1, cos(p2,z1)=C, cos(p1,z1)=C, cos(p2,z2)=0


def test_byol_is_cross_view():
    assert byol_loss(P1, P2, Z1, Z2).item() == pytest.approx((2 - (-1) - C) / 2)


def test_align_and_cross_terms():
    assert align_loss(P1, P2).item() == pytest.approx(2.0)
    assert cross_loss(P1, P2, Z1, Z2).item() == pytest.approx((2 - C - 0) / 2)


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (1.0, -1.0), (0.5, 2.0), (1.0, 0.0)])
def test_raft_signed_beta(alpha, beta):
    expected = alpha * 2.0 - beta * (2 - C) / 2
    assert raft_loss(P1, P2, Z1, Z2, alpha, beta).item() == pytest.approx(expected)


def test_batch_mean():
    p1 = torch.cat([P1, P1]); p2 = torch.cat([P2, P1]); z1 = torch.cat([Z1, P1]); z2 = torch.cat([Z2, P1])
    # second row: everything identical -> byol 0, align 0, cross 0
    assert byol_loss(p1, p2, z1, z2).item() == pytest.approx((2 + 1 - C) / 4)
    assert align_loss(p1, p2).item() == pytest.approx(1.0)


def test_no_gradient_reaches_teacher():
    p1, p2 = P1.clone().requires_grad_(), P2.clone().requires_grad_()
    z1, z2 = Z1.clone().requires_grad_(), Z2.clone().requires_grad_()
    (byol_loss(p1, p2, z1, z2) + raft_loss(p1, p2, z1, z2, 1.0, -1.0)).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p1.grad.abs().sum() > 0


def test_scale_invariance_and_logged_terms():
    terms = loss_terms(P1 * 7, P2 * 0.1, Z1 * 3, Z2)
    assert terms["byol_loss"].item() == pytest.approx(byol_loss(P1, P2, Z1, Z2).item())
    assert terms["l_align"].item() == pytest.approx(2.0)
    assert not terms["l_cross"].requires_grad
