"""Each figure draws from hand-made frames into a PNG that opens, and is skipped when it has no data."""

import itertools

import pandas as pd
from PIL import Image

from study import figures


def _summary(predictors=("mlp",)):
    rows = []
    for tau, (method, beta), pred in itertools.product((0.9, 0.99), (("raft", -1.0), ("raft", 0.0), ("byol", float("nan"))), predictors):
        rows.append({"method": method, "tau": tau, "beta": beta, "predictor": pred, "pred_lr_mult": 1.0,
                     "linear_acc_mean": 0.5 + tau / 10, "knn_acc_mean": 0.4, "proj_std_mean": 0.0 if beta == 0 else 0.8,
                     "proj_rank_mean": 1.0 if beta == 0 else 30.0, "collapsed_frac": 1.0 if beta == 0 else 0.0,
                     "avg_grad_cos_mean": 0.9, "collapse_epoch_mean": 2.0 if beta == 0 else float("nan")})  # fmt: skip
    return pd.DataFrame(rows)


def _size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_method_label_and_column_order():
    assert figures.method_label("byol", float("nan")) == "BYOL" and figures.method_label("raft", -0.5) == "RAFT β=-0.5"
    order = figures._column_order(pd.Series(["BYOL", "RAFT β=1", "RAFT β=-1", "RAFT β=0.5"]))
    assert order == ["RAFT β=-1", "RAFT β=0.5", "RAFT β=1", "BYOL"]


def test_heatmaps_one_panel_per_predictor(tmp_path):
    one = _size(figures.heatmap(_summary(), "linear_acc_mean", tmp_path / "one.png"))
    two = _size(figures.heatmap(_summary(("linear", "mlp")), "linear_acc_mean", tmp_path / "two.png"))
    assert two[0] > 1.5 * one[0]  # a second panel beside the first
    assert figures.heatmap(_summary(), "collapse_epoch_mean", tmp_path / "c.png") is not None
    assert figures.heatmap(_summary().drop(columns="avg_grad_cos_mean"), "avg_grad_cos_mean", tmp_path / "g.png") is None
    assert not (tmp_path / "g.png").exists()


def test_curves_scatter_and_optuna_figures(tmp_path):
    trials = pd.DataFrame([{"trial_id": f"t{i}", "method": "raft", "tau": 0.9, "beta": float(i), "predictor": "mlp",
                            "linear_acc": 0.5 + i / 10, "proj_rank": 10.0 + i, "collapsed": i == 0,
                            "random_init_linear_acc": 0.4} for i in range(3)])  # fmt: skip
    curves = pd.DataFrame([{"trial_id": f"t{i}", "epoch": e, "knn_acc": 0.3 + e / 100, "z_std": 0.5, "tau": 0.9}
                           for i in range(3) for e in (1, 2, 3)])  # fmt: skip
    assert _size(figures.learning_curves(trials, curves, tmp_path / "curves.png"))[1] > 200
    assert figures.learning_curves(trials, curves.iloc[0:0], tmp_path / "none.png") is None
    assert _size(figures.accuracy_vs_rank(trials, tmp_path / "rank.png"))[0] > 300
    history = pd.DataFrame({"number": [0, 1, 2], "value": [0.5, 0.7, 0.6]})
    assert figures.optuna_history(history, "linear_acc", "max", tmp_path / "h.png").is_file()
    assert figures.optuna_importances({"teacher.tau": 0.7, "method.beta": 0.3}, tmp_path / "i.png").is_file()
    assert figures.optuna_importances({}, tmp_path / "j.png") is None
