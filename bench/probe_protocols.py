"""Our linear probe against the standard augmented linear protocol, on the same frozen features.

The engine evaluates with a full-batch L-BFGS logistic regression on features computed once
(seconds). Papers use 100 epochs of SGD on a linear layer over features of augmented images
(random resized crop + flip), recomputed every epoch. This pretrains one BYOL ConvNet on the shared
CIFAR-10 copy, then runs both on its frozen backbone and prints their test accuracy and time, with
the same two protocols on the network at initialisation.

    python bench/probe_protocols.py [--n-train 5000] [--pretrain-epochs 5] [--probe-epochs 100]

Skips (exit 0, says why) when the archive is absent.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.augment import crop_flip, normalize, plain, to_unit  # noqa: E402
from study.config import TrialConfig  # noqa: E402
from study.engine import Trial, embed, probe  # noqa: E402


def augmented_protocol(trial: Trial, epochs: int, batch: int = 256, lr: float = 0.1) -> float:
    """SGD (momentum 0.9, cosine) on a linear layer over standardised features of crop+flip views of
    the train split, recomputed every epoch through the frozen backbone in eval mode; test on plain
    images."""
    d, online = trial.data, trial.online
    gen = torch.Generator().manual_seed(0)
    raw = lambda x: embed(online, x, lambda v: v)["feat"]  # noqa: E731
    ref = raw(plain(d.train_x, d.mean, d.std))  # standardised with the plain train features' statistics,
    mu, sd = ref.mean(0), ref.std(0) + 1e-6  # as a BatchNorm without affine in front of the layer would
    feat = lambda x: (raw(x) - mu) / sd  # noqa: E731
    head = torch.nn.Linear(ref.shape[1], len(d.classes))
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
    steps = epochs * math.ceil(len(d.train_x) / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        perm = torch.randperm(len(d.train_x), generator=gen)
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            views = normalize(crop_flip(to_unit(d.train_x[idx]), (0.08, 1.0), (3 / 4, 4 / 3), 0.5, gen), d.mean, d.std)
            loss = F.cross_entropy(head(feat(views)), d.train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        test = feat(plain(d.test_x, d.mean, d.std))
        return float((head(test).argmax(1) == d.test_y).float().mean())


def compare(trial: Trial, label: str, probe_epochs: int) -> None:
    start = time.perf_counter()
    a = probe(trial.online, trial.data, trial.cfg)[0]["linear_acc"]  # the engine's own evaluation
    mid = time.perf_counter()
    b = augmented_protocol(trial, probe_epochs)
    end = time.perf_counter()
    print(f"{label:12s} L-BFGS on features once: {a:.4f} ({mid - start:5.1f} s)   "
          f"{probe_epochs}-epoch augmented SGD: {b:.4f} ({end - mid:6.1f} s)   difference {a - b:+.4f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=ROOT.parent / "shared/data/cifar10-jpeg.tar.gz")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--probe-epochs", type=int, default=100)
    args = parser.parse_args()
    if not args.archive.is_file():
        print(f"skipped: {args.archive} not found")
        return
    cfg = TrialConfig.model_validate({
        "data": {"name": "imagefolder", "root": str(args.archive), "n_train": args.n_train, "n_test": 2000},
        "augment": {"crop_scale": [0.2, 1.0]}, "model": {"backbone": "convnet"}, "method": {"name": "byol"},
        "teacher": {"tau": 0.99}, "optim": {"lr": 1e-3, "schedule": "constant"},
        "train": {"epochs": args.pretrain_epochs, "device": "cpu"},
    })  # fmt: skip
    trial = Trial(cfg)
    print(f"ConvNet, {args.n_train} train / 2000 test images of the shared CIFAR-10 copy, {torch.get_num_threads()} threads")
    compare(trial, "random init", args.probe_epochs)
    for _ in range(args.pretrain_epochs):
        trial.train_epoch()
    compare(trial, f"BYOL {args.pretrain_epochs} ep", args.probe_epochs)


if __name__ == "__main__":
    main()
