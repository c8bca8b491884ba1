"""Collapse metrics of a set of vectors (rows), each with a known answer:

- `normalized_std`: std over samples of the l2-normalised vectors, averaged over dimensions,
  times sqrt(d). About 1 for an isotropic spread (each coordinate of a uniform point on the
  sphere has variance 1/d), 0 when every vector points the same way (complete collapse).
- `rankme`: RankMe effective rank (Garrido et al. 2023), exp of the entropy of the normalised
  singular values: about d for isotropic data, 1 for a constant set.
- `alignment`: Wang & Isola's E ||f(x) - f(x')||^alpha over positive pairs (alpha = 2), 0 when the
  two views map to the same point.
- `uniformity`: log E exp(-t ||f(x) - f(y)||^2) over all pairs (t = 2): 0 when collapsed, about
  -4 for points uniform on a high-dimensional sphere.

The collapse rule (`is_collapsed`): a trial has collapsed when the normalised std of its projector
outputs or of its predictor outputs (the vectors the losses compare) falls below a threshold,
0.1 by default, i.e. the compared vectors keep under a tenth of an isotropic spread.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def spread(v: Tensor) -> Tensor:
    """`normalized_std` as a 0-d tensor, for use inside a training step without a host sync."""
    return F.normalize(v.detach().float(), dim=1).std(dim=0).mean() * math.sqrt(v.shape[1])


def normalized_std(v: Tensor) -> float:
    return float(spread(v))


def rankme(v: Tensor, eps: float = 1e-7) -> float:
    s = torch.linalg.svdvals(v.float())
    p = s / (s.sum() + eps) + eps
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(a: Tensor, b: Tensor, alpha: float = 2.0) -> float:
    return float((F.normalize(a.float(), dim=1) - F.normalize(b.float(), dim=1)).norm(dim=1).pow(alpha).mean())


def uniformity(v: Tensor, t: float = 2.0) -> float:
    z = F.normalize(v.float(), dim=1)
    return float(torch.pdist(z).pow(2).mul(-t).exp().mean().log())


def is_collapsed(proj_std: float, pred_std: float, threshold: float) -> bool:
    if not (math.isfinite(proj_std) and math.isfinite(pred_std)):
        return True
    return bool(min(proj_std, pred_std) < threshold)


def collapse_metrics(plain: dict[str, Tensor], view1: dict[str, Tensor], view2: dict[str, Tensor]) -> dict[str, float]:
    """`{level}_{std,rank,align,uniform}` for each level (feat, proj, pred): std and rank on the
    unaugmented vectors, alignment between two augmented views, uniformity on the first view."""
    out: dict[str, float] = {}
    for level, v in plain.items():
        out[f"{level}_std"] = normalized_std(v)
        out[f"{level}_rank"] = rankme(v)
        out[f"{level}_align"] = alignment(view1[level], view2[level])
        out[f"{level}_uniform"] = uniformity(view1[level])
    return out


def collapse_epoch(z_std: list[float], p_std: list[float], threshold: float) -> int | None:
    """The first epoch (1-based) whose projector- or predictor-output std fell below `threshold`
    (or stopped being finite), or None when the trial never collapsed."""
    for epoch, (z, p) in enumerate(zip(z_std, p_std, strict=True), start=1):
        if is_collapsed(z, p, threshold):
            return epoch
    return None
