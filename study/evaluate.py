"""Evaluation on frozen features computed once: a full-batch linear probe and weighted kNN.

Both run as batched tensor work on the trial's device instead of epochs of augmented training.
The linear probe is multinomial logistic regression on standardised features, fitted by L-BFGS
with an L2 penalty; the kNN classifier is lightly's benchmark one (cosine similarity, the k
nearest train features vote with weight exp(sim / temperature)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def linear_probe(
    train_f: Tensor, train_y: Tensor, test_f: Tensor, test_y: Tensor, num_classes: int,
    l2: float = 1e-4, max_iter: int = 200,
) -> float:  # fmt: skip
    """Test accuracy of a logistic-regression probe trained on the train features."""
    mean, std = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
    x, xt = (train_f - mean) / std, (test_f - mean) / std
    weight = torch.zeros(x.shape[1], num_classes, device=x.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, train_y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return float(((xt @ weight + bias).argmax(1) == test_y).float().mean())


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
