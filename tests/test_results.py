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


def _curves(rows):
    return pd.DataFrame([{"trial_id": t, "epoch": e, "z_std": z, "p_std": p, "grad_cos": g} for t, e, z, p, g in rows])


CURVES = _curves([
    ("a", 1, 0.9, 0.9, 0.5), ("a", 2, 0.8, 0.8, 0.7),
    ("c", 1, 0.5, 0.4, 0.9), ("c", 2, 0.2, 0.05, 0.95), ("c", 3, 0.01, 0.01, 1.0),
    ("d", 1, 0.05, 0.3, -0.2),
])  # fmt: skip


def test_history_gives_collapse_epochs_and_diagnostic_means():
    from study.results import with_history

    t = with_history(TRIALS.assign(collapse_std=0.1), CURVES).set_index("trial_id")
    assert math.isnan(t.loc["a", "collapse_epoch"]) and t.loc["a", "avg_grad_cos"] == pytest.approx(0.6)
    assert t.loc["c", "collapse_epoch"] == 2 and t.loc["c", "avg_grad_cos"] == pytest.approx(0.95)
    assert t.loc["d", "collapse_epoch"] == 1
    assert math.isnan(t.loc["h", "avg_grad_cos"]) and math.isnan(t.loc["h", "collapse_epoch"])  # no curves
    s = summary_frame(t.reset_index()).set_index(["method", "beta"])
    assert s.loc[("raft", 1.0), "avg_grad_cos_mean"] == pytest.approx((0.6 + 0.95) / 2)
    assert s.loc[("raft", 1.0), "collapse_epoch_mean"] == 2  # the seeds that collapsed


def test_paper_questions_answer_from_the_diagnostics():
    from study.report import paper_questions
    from study.results import with_history

    t = with_history(TRIALS.assign(collapse_std=0.1, epochs_done=[2, 2, 3, 1, 1, 0, 0, 0]), CURVES)
    text = "\n".join(paper_questions(t, summary_frame(t)))
    assert "most at raft tau=0.99 beta=1 predictor=mlp (+0.775), least at raft tau=0.99 beta=0 predictor=mlp (-0.200)" in text
    assert "β=0: -0.200, β=1: +0.775" in text
    assert "in 2 of 5 trials that trained, the training batches' z_std or p_std fell below the threshold, at epoch 1.5 (median)" in text
    none = "\n".join(paper_questions(TRIALS, summary_frame(TRIALS)))
    assert "No gradient diagnostics were recorded" in none and "**When collapse sets in:**" not in none  # no curves


def test_compare_puts_shared_configurations_side_by_side(tmp_path, monkeypatch):
    from study import report
    from study.spec import StudySpec

    def frames(path):
        spec = StudySpec.model_validate({"name": path, "space": {"method.beta": {"grid": [0.0, 1.0, -1.0]}},
                                        "seeds": [0, 1, 2]})  # fmt: skip
        trials = TRIALS if path == "A" else TRIALS.assign(linear_acc=TRIALS["linear_acc"] + 0.05)
        trials = trials[trials["trial_id"] != "h"] if path == "B" else trials
        return spec, trials, summary_frame(trials), pd.DataFrame()

    monkeypatch.setattr(report, "study_frames", frames)
    out = report.compare("A", "B", tmp_path)
    assert out.name == "compare-A-B" and (out / "report.html").is_file()
    text = (out / "report.md").read_text()
    assert text.startswith("# `A` against `B`") and "**A:** 6 of 9 trials reached a final evaluation. **Best:** byol" in text
    assert "**B:** 5 of 9 trials reached a final evaluation. **Best:** raft tau=0.99 beta=1" in text
    table = [line for line in text.splitlines() if line.startswith("| raft")]
    assert len(table) == 2  # beta 0 and 1 in both; byol only in A
    assert all(line.rstrip(" |").endswith("0.0500") for line in table)  # B - A
    assert "Only in `A`: 1 configuration(s); only in `B`: 0." in text
