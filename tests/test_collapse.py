import math

import pytest
import torch

from study.collapse import alignment, collapse_metrics, is_collapsed, normalized_std, rankme, uniformity


def _gaussian(n=4000, d=32):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


def test_isotropic_gaussian():
    v = _gaussian()
    assert normalized_std(v) == pytest.approx(1.0, abs=0.02)
    assert rankme(v) == pytest.approx(32, rel=0.03)
    # uniform on S^31: E||x - y||^2 = 2, so uniformity is close to -4 (a bit above, by Jensen)
    assert -4.0 < uniformity(v[:1000]) < -3.5


def test_collapsed_set():
    v = torch.ones(500, 32) * 3 + 1e-6 * _gaussian(500, 32)
    assert normalized_std(v) < 1e-3
    assert rankme(v) == pytest.approx(1.0, abs=0.01)
    assert uniformity(v) == pytest.approx(0.0, abs=1e-4)


def test_alignment_known_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert alignment(a, a * 5) == pytest.approx(0.0)
    assert alignment(a, -a) == pytest.approx(4.0)
    assert alignment(a, torch.tensor([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(2.0)


def test_rank_of_low_dimensional_data():
    v = torch.cat([_gaussian(2000, 4), torch.zeros(2000, 28)], 1)
    assert rankme(v) == pytest.approx(4, rel=0.05)
    # 4 active coordinates of std 1/2 each, 28 of std 0: mean std 1/16, times sqrt(32)
    assert normalized_std(v) == pytest.approx(math.sqrt(32) / 16, rel=0.03)


def test_collapse_rule():
    assert is_collapsed(0.05, 0.9, 0.1) and is_collapsed(0.9, 0.05, 0.1)
    assert not is_collapsed(0.5, 0.4, 0.1)
    assert is_collapsed(float("nan"), 0.5, 0.1)


def test_collapse_metrics_names():
    v = _gaussian(64, 8)
    m = collapse_metrics({"feat": v, "proj": v}, {"feat": v, "proj": v}, {"feat": v, "proj": -v})
    assert set(m) == {f"{lvl}_{k}" for lvl in ("feat", "proj") for k in ("std", "rank", "align", "uniform")}
    assert m["feat_align"] == pytest.approx(0.0) and m["proj_align"] == pytest.approx(4.0)


def test_collapse_epoch_is_the_first_epoch_below_threshold():
    from study.collapse import collapse_epoch

    assert collapse_epoch([0.9, 0.5, 0.05, 0.01], [0.9, 0.6, 0.5, 0.02], 0.1) == 3
    assert collapse_epoch([0.9, 0.8], [0.9, 0.05], 0.1) == 2
    assert collapse_epoch([0.9, float("nan")], [0.9, 0.9], 0.1) == 2
    assert collapse_epoch([0.9, 0.9], [0.9, float("nan")], 0.1) == 2
    assert collapse_epoch([0.9, 0.8], [0.9, 0.8], 0.1) is None
