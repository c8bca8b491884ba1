"""Diagnostics that test the RAFT paper's claims inside a trial, on a fixed probe batch.

The paper says BYOL behaves like RAFT and that the run-away term is what keeps RAFT from
collapsing. These measurements let a study check that trial by trial:

- gradient agreement: cosine between the gradients of the BYOL loss and of the RAFT loss (with
  the trial's alpha, beta) on the same batch, over all online parameters and per part (encoder =
  the backbone, projector, predictor); 1 when the two objectives push the weights the same way;
- the predictor: the norm of its weights, and for linear kinds its distance from the identity
  and how well its eigenvectors align with those of the correlation matrix of its inputs (Tian,
  Chen and Ganguli 2021 find they align);
- the teacher-student distance in parameter space, and the effective rank of projector outputs.

Measuring never changes training: BatchNorm buffers are restored afterwards, the probe batch is
augmented with its own generator, and parameter gradients are taken with `autograd.grad`, which
leaves `.grad` untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from study.collapse import rankme
from study.losses import byol_loss, raft_loss
from study.models import OnlineNet


def grad_cosine(a: Sequence[Tensor | None], b: Sequence[Tensor | None]) -> float:
    """Cosine between two gradients given as matching lists of per-parameter tensors (None = zero).

    NaN when either gradient is zero (no direction to compare)."""
    dot = norm_a = norm_b = 0.0
    for ga, gb in zip(a, b, strict=True):
        if ga is not None:
            norm_a += float(ga.double().pow(2).sum())
        if gb is not None:
            norm_b += float(gb.double().pow(2).sum())
        if ga is not None and gb is not None:
            dot += float((ga.double() * gb.double()).sum())
    if norm_a == 0.0 or norm_b == 0.0:
        return math.nan
    return dot / math.sqrt(norm_a * norm_b)


def parameter_parts(online: OnlineNet) -> dict[str, list[nn.Parameter]]:
    """The online parameters split as the paper does: encoder (backbone), projector, predictor."""
    return {
        "encoder": list(online.encoder.backbone.parameters()),
        "projector": list(online.encoder.projector.parameters()),
        "predictor": list(online.predictor.parameters()),
    }


@contextmanager
def buffers_kept(*modules: nn.Module) -> Iterator[None]:
    """Run forward passes without leaving a trace in BatchNorm running statistics."""
    saved = [(b, b.detach().clone()) for m in modules for b in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def gradient_agreement(
    online: OnlineNet, teacher: nn.Module, x1: Tensor, x2: Tensor, alpha: float, beta: float
) -> dict[str, float]:
    """`grad_cos` and `grad_cos_{encoder,projector,predictor}`: BYOL's gradient against RAFT's."""
    parts = parameter_parts(online)
    params = [p for ps in parts.values() for p in ps]
    with buffers_kept(online, teacher):  # restored only after backward, which reads them
        _, p1 = online(x1)
        _, p2 = online(x2)
        with torch.no_grad():
            t1, t2 = teacher(x1), teacher(x2)
        g_byol = torch.autograd.grad(byol_loss(p1, p2, t1, t2), params, retain_graph=True, allow_unused=True)
        g_raft = torch.autograd.grad(raft_loss(p1, p2, t1, t2, alpha, beta), params, allow_unused=True)
    out = {"grad_cos": grad_cosine(g_byol, g_raft)}
    start = 0
    for name, ps in parts.items():
        end = start + len(ps)
        if ps:  # a `none` predictor has nothing to compare
            out[f"grad_cos_{name}"] = grad_cosine(g_byol[start:end], g_raft[start:end])
        start = end
    return out


def linear_weight(predictor: nn.Module) -> Tensor | None:
    """The d x d matrix of a linear or linear_bn predictor (before its BatchNorm), else None."""
    if isinstance(predictor, nn.Linear):
        return predictor.weight
    if isinstance(predictor, nn.Sequential) and len(predictor) == 2 and isinstance(predictor[1], nn.BatchNorm1d):
        return predictor[0].weight
    return None


def identity_distance(w: Tensor) -> float:
    """||W - I||_F / ||I||_F: 0 at the identity, 1 for W = 0."""
    eye = torch.eye(w.shape[0], device=w.device, dtype=w.dtype)
    return float((w - eye).norm() / math.sqrt(w.shape[0]))


def eigen_alignment(w: Tensor, inputs: Tensor) -> float:
    """How well W's eigenvectors line up with those of F = E[z z^T] of its inputs z (rows).

    For each eigenvector u_j of F, |cos(W u_j, u_j)| is 1 when u_j is also an eigenvector of W; the
    result averages it weighted by F's eigenvalues, so the directions the inputs actually use count.
    """
    z = inputs.double()
    corr = z.T @ z / len(z)
    evals, evecs = torch.linalg.eigh(corr)
    mapped = w.detach().double() @ evecs
    cos = F.cosine_similarity(mapped, evecs, dim=0).abs()
    weights = evals.clamp_min(0)
    return float((cos * weights).sum() / weights.sum())


def weight_norm(module: nn.Module) -> float:
    """Frobenius norm of all weight matrices of a module, taken together (0 for none)."""
    return float(sum(p.detach().double().pow(2).sum() for p in module.parameters() if p.ndim >= 2) ** 0.5)


def teacher_distance(online: nn.Module, teacher: nn.Module) -> float:
    """||theta_online - theta_teacher|| / ||theta_online|| over the parameters the teacher averages."""
    diff = sum(float((o.detach() - t.detach()).double().pow(2).sum()) for o, t in zip(online.parameters(), teacher.parameters()))
    size = sum(float(o.detach().double().pow(2).sum()) for o in online.parameters())
    return math.sqrt(diff / size)


def diagnose(online: OnlineNet, teacher: nn.Module, x1: Tensor, x2: Tensor, alpha: float, beta: float) -> dict[str, float]:
    """Every diagnostic on one pair of augmented views of the probe batch."""
    out = gradient_agreement(online, teacher, x1, x2, alpha, beta)
    with torch.no_grad(), buffers_kept(online):
        z = online.encoder(x1)
    out["z_rank"] = rankme(z)
    out["teacher_dist"] = teacher_distance(online.encoder, teacher)
    out["pred_weight_norm"] = weight_norm(online.predictor)
    w = linear_weight(online.predictor)
    if w is not None:
        out["pred_identity_dist"] = identity_distance(w.detach())
        out["pred_eig_align"] = eigen_alignment(w, z)
    return out
