import math

import pytest
import torch

from study.config import ConfigError
from study.data import load_data
from study.engine import STATE_FILE, lr_factor, run_trial
from tests.conftest import tiny_config

FINAL_KEYS = {
    "linear_acc", "knn_acc", "random_init_linear_acc", "random_init_knn_acc", "collapsed", "status",
    *(f"{lvl}_{m}" for lvl in ("feat", "proj", "pred") for m in ("std", "rank", "align", "uniform")),
}  # fmt: skip
EPOCH_KEYS = {"epoch", "loss", "byol_loss", "l_align", "l_cross", "z_std", "p_std", "lr", "tau", "epoch_seconds"}


def test_lr_schedule():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0)
    assert lr_factor(70, 100, 0, "constant") == 1.0


@pytest.mark.slow
def test_pretraining_lowers_the_loss_and_reports_every_metric():
    cfg = tiny_config(method={"name": "byol"}, train={"epochs": 6}, eval={"knn_every": 3})
    reports = []
    result = run_trial(cfg, lambda m, path: reports.append((m, path)))
    assert result.status == "completed"
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.05
    assert all(EPOCH_KEYS <= set(h) for h in result.history)
    assert "knn_acc" in result.history[2] and "knn_acc" not in result.history[1]
    assert FINAL_KEYS <= set(result.metrics) and result.metrics["final"] is True
    # digits is easy: the trained backbone's linear probe is far above chance (10 %)
    assert result.metrics["linear_acc"] > 0.5 and 0 < result.metrics["knn_acc"] <= 1
    assert all(math.isfinite(result.metrics[k]) for k in FINAL_KEYS - {"collapsed", "status"})
    assert [m["final"] for m, _ in reports] == [False] * 6 + [True]
    assert all(path is None for _, path in reports)


@pytest.mark.slow
@pytest.mark.parametrize("method", [{"name": "byol"}, {"name": "raft", "alpha": 0.5, "beta": -1.0}])
def test_logged_loss_is_the_methods_objective(method):
    h = run_trial(tiny_config(method=method, train={"epochs": 1}, eval={"random_init_baseline": False})).history[0]
    expected = h["byol_loss"] if method["name"] == "byol" else 0.5 * h["l_align"] + h["l_cross"]
    assert h["loss"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_same_seed_same_numbers_and_other_seed_differs():
    cfg = tiny_config()
    a, b = run_trial(cfg), run_trial(cfg)
    c = run_trial(tiny_config(train={"seed": 1}))
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("epoch_seconds", "images_per_s")} for e in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert a.metrics["linear_acc"] == b.metrics["linear_acc"] and a.metrics["pred_rank"] == b.metrics["pred_rank"]
    assert strip(a.history) != strip(c.history)


class _Stop(Exception):
    pass


@pytest.mark.slow
def test_resumed_trial_ends_with_the_same_metrics(tmp_path):
    cfg = tiny_config(train={"epochs": 4}, teacher={"schedule": "cosine"}, optim={"warmup_epochs": 1})
    whole = run_trial(cfg, checkpoint_dir=tmp_path / "whole")

    def stop_after_two(metrics, path):
        if metrics.get("epoch") == 2 and not metrics["final"]:
            assert path is not None and path.name == STATE_FILE
            raise _Stop

    with pytest.raises(_Stop):
        run_trial(cfg, stop_after_two, checkpoint_dir=tmp_path / "cut")
    epochs_seen = []
    resumed = run_trial(cfg, lambda m, _: epochs_seen.append(m.get("epoch")), checkpoint_dir=tmp_path / "cut")
    assert epochs_seen[:2] == [3, 4]
    for key in ("loss", "linear_acc", "knn_acc", "proj_std", "pred_rank", "random_init_linear_acc"):
        assert resumed.metrics[key] == whole.metrics[key], key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]


@pytest.mark.slow
def test_checkpoint_of_another_config_is_refused(tmp_path):
    run_trial(tiny_config(train={"epochs": 1}), checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="different trial config"):
        run_trial(tiny_config(train={"epochs": 1}, method={"beta": 0.5}), checkpoint_dir=tmp_path)


@pytest.mark.slow
def test_nan_loss_ends_as_diverged_not_a_crash(tmp_path):
    cfg = tiny_config(optim={"name": "sgd", "lr": 1e30}, train={"epochs": 3})
    result = run_trial(cfg, checkpoint_dir=tmp_path)
    assert result.status == "diverged" and "loss is" in result.message
    assert result.metrics["status"] == "diverged" and result.metrics["epochs_done"] < 3
    assert "random_init_linear_acc" in result.metrics
    reports = []
    again = run_trial(cfg, lambda m, _: reports.append(m), checkpoint_dir=tmp_path)  # resumed: it stays ended
    assert again.metrics == result.metrics and reports == [result.metrics]


@pytest.mark.slow
def test_collapse_stop_ends_training_early_and_still_evaluates(tmp_path):
    stopped = run_trial(tiny_config(train={"epochs": 4, "collapse_stop": {"threshold": 5.0, "after_epoch": 2}}),
                        checkpoint_dir=tmp_path)  # fmt: skip
    assert stopped.status == "stopped" and len(stopped.history) == 2
    assert stopped.message.startswith("collapse stop at epoch 2") and "linear_acc" in stopped.metrics
    again = run_trial(tiny_config(train={"epochs": 4, "collapse_stop": {"threshold": 5.0, "after_epoch": 2}}),
                      checkpoint_dir=tmp_path)  # fmt: skip
    assert len(again.history) == 2 and again.metrics["linear_acc"] == stopped.metrics["linear_acc"]
    kept = run_trial(tiny_config(train={"epochs": 2, "collapse_stop": {"threshold": 1e-9, "after_epoch": 1}}))
    assert kept.status == "completed" and kept.message == ""


def test_batch_larger_than_data_is_refused():
    data = load_data(tiny_config().data)
    with pytest.raises(ConfigError, match="train.batch_size=4096"):
        run_trial(tiny_config(train={"batch_size": 4096}), data=data)


def test_missing_cuda_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="train.device"):
        run_trial(tiny_config(train={"device": "cuda"}))


def test_precision_auto_is_fp32_on_cpu_and_bf16_autocast_trains():
    fp32 = run_trial(tiny_config(train={"epochs": 1, "precision": "fp32"}, eval={"random_init_baseline": False})).history[0]
    auto = run_trial(tiny_config(train={"epochs": 1, "precision": "auto"}, eval={"random_init_baseline": False})).history[0]
    bf16 = run_trial(tiny_config(train={"epochs": 1, "precision": "bf16"}, eval={"random_init_baseline": False})).history[0]
    assert auto["loss"] == fp32["loss"]  # CPU runs keep their fp32 numbers
    assert bf16["loss"] != fp32["loss"] and abs(bf16["loss"] - fp32["loss"]) < 0.05


def test_packed_gpu_trials_cap_their_memory():
    from study.spec import StudySpec, trial_config

    spec = StudySpec.model_validate({"name": "p", "space": {"method.beta": {"grid": [1.0]}}, "resources": {"cpu": 2, "gpu": 0.25}})
    assert trial_config(spec, {"method.beta": 1.0}).train.gpu_memory_fraction == 0.25
    whole = StudySpec.model_validate({"name": "w", "space": {"method.beta": {"grid": [1.0]}}, "resources": {"cpu": 2, "gpu": 1}})
    assert trial_config(whole, {"method.beta": 1.0}).train.gpu_memory_fraction is None
