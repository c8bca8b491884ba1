"""The objectives, as pure functions of unnormalised vectors.

`p1, p2` are the online predictions of the two views, `z1_t, z2_t` the Mean Teacher's projections
of the same two views. Every function l2-normalises inside and detaches the teacher's vectors
itself, so no gradient can reach the teacher whatever the caller does. Each returns a scalar
averaged over the batch. Formulas follow the RAFT paper (Shi et al., 2020) and the authors' code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _cos(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity of l2-normalised vectors."""
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(dim=-1)


def byol_loss(p1: Tensor, p2: Tensor, z1_t: Tensor, z2_t: Tensor) -> Tensor:
    """BYOL, cross-view: mean of (2 - cos(p1, z2') - cos(p2, z1')) / 2."""
    return ((2 - _cos(p1, z2_t.detach()) - _cos(p2, z1_t.detach())) / 2).mean()


def align_loss(p1: Tensor, p2: Tensor) -> Tensor:
    """L_align: mean of 2 - 2 cos(p1, p2), the two online predictions pulled together."""
    return (2 - 2 * _cos(p1, p2)).mean()


def cross_loss(p1: Tensor, p2: Tensor, z1_t: Tensor, z2_t: Tensor) -> Tensor:
    """L_cross: mean of (2 - cos(p1, z1') - cos(p2, z2')) / 2, each prediction against the
    teacher's projection of the *same* view."""
    return ((2 - _cos(p1, z1_t.detach()) - _cos(p2, z2_t.detach())) / 2).mean()


def raft_loss(p1: Tensor, p2: Tensor, z1_t: Tensor, z2_t: Tensor, alpha: float, beta: float) -> Tensor:
    """RAFT: alpha * L_align - beta * L_cross. beta > 0 runs away from the teacher, beta < 0 runs
    towards it (the paper's upper bound of BYOL), beta = 0 is alignment alone."""
    return alpha * align_loss(p1, p2) - beta * cross_loss(p1, p2, z1_t, z2_t)


def loss_terms(p1: Tensor, p2: Tensor, z1_t: Tensor, z2_t: Tensor) -> dict[str, Tensor]:
    """All three terms, detached, for logging both methods' views of the same step."""
    with torch.no_grad():
        return {
            "byol_loss": byol_loss(p1, p2, z1_t, z2_t),
            "l_align": align_loss(p1, p2),
            "l_cross": cross_loss(p1, p2, z1_t, z2_t),
        }
