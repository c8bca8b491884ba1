"""Evaluation on frozen features computed once: a full-batch linear probe and weighted kNN.

Both run as batched tensor work on the trial's device instead of epochs of augmented training.
The linear probe is multinomial logistic regression on standardised features, fitted by L-BFGS
with an L2 penalty chosen on a held-out part of the train split (as in SimCLR's linear evaluation); the kNN classifier is lightly's benchmark one (cosine similarity, the k
nearest train features vote with weight exp(sim / temperature)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def fit_logistic(x: Tensor, y: Tensor, num_classes: int, l2: float, max_iter: int) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS: (weight [d, C], bias [C])."""
    weight = torch.zeros(x.shape[1], num_classes, device=x.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return weight.detach(), bias.detach()


def _accuracy(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor) -> float:
    return float(((x @ weight + bias).argmax(1) == y).float().mean())


def linear_probe(
    train_f: Tensor, train_y: Tensor, test_f: Tensor, test_y: Tensor, num_classes: int,
    l2: Sequence[float] = (1e-4,), max_iter: int = 200, val_fraction: float = 0.1,
) -> float:  # fmt: skip
    """Test accuracy of a logistic-regression probe on standardised train features. With several
    L2 penalties, the one with the best accuracy on a fixed held-out part of the train split is
    refitted on the whole train split (the test split is never used to choose)."""
    mean, std = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
    x, xt = (train_f - mean) / std, (test_f - mean) / std
    best = l2[0]
    if len(l2) > 1:
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).to(x.device)
        n_val = max(1, int(len(x) * val_fraction))
        val, fit = perm[:n_val], perm[n_val:]
        scores = [_accuracy(x[val], train_y[val], *fit_logistic(x[fit], train_y[fit], num_classes, lam, max_iter))
                  for lam in l2]  # fmt: skip
        best = l2[max(range(len(l2)), key=lambda i: (scores[i], -i))]
    return _accuracy(xt, test_y, *fit_logistic(x, train_y, num_classes, best, max_iter))


@torch.no_grad()
def knn_accuracy(
    train_f: Tensor, train_y: Tensor, test_f: Tensor, test_y: Tensor, num_classes: int,
    k: int = 200, temperature: float = 0.1, chunk: int = 1024,
) -> float:  # fmt: skip
    """Weighted kNN accuracy with cosine similarity."""
    bank = F.normalize(train_f, dim=1)
    k = min(k, len(bank))
    correct = 0
    for start in range(0, len(test_f), chunk):
        q = F.normalize(test_f[start : start + chunk], dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(q), num_classes, device=q.device)
        votes.scatter_add_(1, train_y[idx], (sim / temperature).exp())
        correct += int((votes.argmax(1) == test_y[start : start + chunk]).sum())
    return correct / len(test_f)
