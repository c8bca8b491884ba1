"""The Mean Teacher: an exponential moving average of the online backbone and projector.

BatchNorm: the teacher runs in train mode, like the online net, so its BatchNorm layers normalise
with the statistics of the current batch (as in BYOL and the RAFT authors' code). Only parameters
are averaged; the teacher's running mean/variance buffers are updated by its own forward passes
and are never used for training targets.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def tau_at(step: int, total_steps: int, base_tau: float, schedule: str) -> float:
    """EMA decay at `step`: constant, or BYOL's cosine increase from base_tau to 1."""
    if schedule == "constant" or total_steps <= 0:
        return base_tau
    if schedule == "cosine":
        progress = min(step / total_steps, 1.0)
        return 1 - (1 - base_tau) * (math.cos(math.pi * progress) + 1) / 2
    raise ValueError(f"unknown teacher schedule {schedule!r}")


def make_teacher(online: nn.Module) -> nn.Module:
    """A gradient-free copy of `online` that starts identical to it."""
    teacher = copy.deepcopy(online)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, online: nn.Module, tau: float) -> None:
    """teacher <- tau * teacher + (1 - tau) * online, fused over all parameters.

    tau = 0 makes the teacher a copy of the online net; tau = 1 leaves it frozen.
    """
    t_params = [p for p in teacher.parameters()]
    o_params = [p.detach() for p in online.parameters()]
    if tau == 0.0:
        torch._foreach_copy_(t_params, o_params)
    elif tau != 1.0:
        torch._foreach_lerp_(t_params, o_params, 1.0 - tau)
