import pytest
import torch
from torch import nn

from study.teacher import ema_update, make_teacher, tau_at


def _pair():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    teacher = make_teacher(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    return online, teacher


def test_teacher_starts_as_copy_without_grad():
    online, teacher = _pair()
    assert all(not p.requires_grad for p in teacher.parameters())
    assert teacher[0].weight.data_ptr() != online[0].weight.data_ptr()


def test_ema_update_value():
    online, teacher = _pair()
    before = teacher[0].weight.clone()
    ema_update(teacher, online, 0.9)
    assert torch.allclose(teacher[0].weight, 0.9 * before + 0.1 * online[0].weight)


def test_tau_zero_copies_and_tau_one_freezes():
    online, teacher = _pair()
    frozen = [p.clone() for p in teacher.parameters()]
    ema_update(teacher, online, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), frozen))
    ema_update(teacher, online, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), online.parameters()))


def test_tau_schedules():
    assert tau_at(0, 100, 0.99, "constant") == 0.99
    assert tau_at(0, 100, 0.99, "cosine") == pytest.approx(0.99)
    assert tau_at(50, 100, 0.99, "cosine") == pytest.approx(0.995)
    assert tau_at(100, 100, 0.99, "cosine") == pytest.approx(1.0)
    assert tau_at(25, 100, 0.9, "cosine") == pytest.approx(1 - 0.1 * (1 + 2**-0.5) / 2)
