"""Aggregation on hand-made trial results with known means, spreads and collapse fractions."""

import math

import pandas as pd
import pytest

from study.report import answer, missing
from study.results import summary_frame


def _row(trial_id, status, beta, seed, acc=float("nan"), collapsed=None, method="raft", reason=""):
    return {"trial_id": trial_id, "status": status, "method": method, "tau": 0.99, "alpha": 1.0, "beta": beta,
            "predictor": "mlp", "pred_lr_mult": 1.0, "lr": 1e-3, "weight_decay": 0.0, "seed": seed,
            "linear_acc": acc, "knn_acc": acc - 0.1 if acc == acc else acc, "random_init_linear_acc": 0.5,
            "pred_std": 0.01 if collapsed else 0.5, "collapsed": collapsed, "reason": reason}  # fmt: skip


TRIALS = pd.DataFrame([
    _row("a", "completed", 1.0, 0, 0.80, False), _row("b", "completed", 1.0, 1, 0.90, False),
    _row("c", "completed", 1.0, 2, 0.70, True),
    _row("d", "completed", 0.0, 0, 0.55, True), _row("e", "stopped", 0.0, 1, 0.45, True, reason="collapse stop"),
    _row("f", "diverged", 0.0, 2, reason="loss is nan at epoch 2, step 3"),
    _row("g", "errored", -1.0, 0, reason="error"), _row("h", "completed", float("nan"), 0, 0.85, False, method="byol"),
])  # fmt: skip


def test_summary_pools_seeds_with_known_means_spreads_and_collapse_fractions():
    s = summary_frame(TRIALS).set_index(["method", "beta"], drop=False)
    one = s.loc[("raft", 1.0)]
    assert one["linear_acc_mean"] == pytest.approx(0.8) and one["linear_acc_std"] == pytest.approx(0.1)
    assert one["linear_acc_count"] == 3 and one["seeds"] == 3 and one["collapsed_frac"] == pytest.approx(1 / 3)
    zero = s.loc[("raft", 0.0)]  # the diverged seed has no final metrics: two seeds pooled
    assert zero["linear_acc_mean"] == pytest.approx(0.5) and zero["seeds"] == 2 and zero["collapsed_frac"] == 1.0
    assert ("raft", -1.0) not in s.index  # errored, nothing to pool
    byol = s[s["method"] == "byol"].iloc[0]
    assert byol["linear_acc_mean"] == pytest.approx(0.85) and math.isnan(byol["linear_acc_std"])


def test_report_opens_with_the_answer_and_lists_what_is_missing():
    summary = summary_frame(TRIALS)
    text = "\n".join(answer("demo", TRIALS, summary, 9, "linear_acc"))
    assert "6 of 9 trials reached a final evaluation." in text
    assert "**Best:** byol tau=0.99 predictor=mlp: linear_acc 0.8500 over 1 seed(s)" in text
    assert "**Collapsed** (more than half of the seeds): raft tau=0.99 beta=0 predictor=mlp." in text
    assert "| 0.99 | 0.8500 | 0.8000 |" in text
    gaps = "\n".join(missing(TRIALS, 9))
    assert "f (raft tau=0.99 beta=0 predictor=mlp seed=2): diverged, loss is nan" in gaps
    assert "g (raft tau=0.99 beta=-1 predictor=mlp seed=0): errored" in gaps
    assert "e (" in gaps and "1 trial(s) not started yet" in gaps
