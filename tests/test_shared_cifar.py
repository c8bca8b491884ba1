"""End-to-end on the shared CIFAR-10 copy (skipped without it; CI sets RAFT_STUDY_REQUIRE_SHARED=1)."""

import pytest

from study.config import DataConfig, TrialConfig
from study.data import load_data
from study.engine import run_trial


@pytest.mark.slow
def test_cifar10_archive_loads_and_a_short_pretraining_runs(shared_cifar):
    data = load_data(DataConfig(name="imagefolder", root=str(shared_cifar)))
    assert data.train_x.shape == (50_000, 3, 32, 32) and data.test_x.shape == (10_000, 3, 32, 32)
    assert data.classes[0] == "airplane" and data.classes[-1] == "truck"
    assert (data.train_y.bincount() == 5000).all()
    cfg = TrialConfig.model_validate({
        "data": {"name": "imagefolder", "root": str(shared_cifar), "n_train": 1024, "n_test": 512},
        "model": {"width": 16, "depth": 3, "proj_hidden": 128, "proj_dim": 64, "pred_hidden": 128},
        "method": {"name": "raft", "beta": 1.0},
        "optim": {"lr": 1e-3},
        "train": {"epochs": 3, "batch_size": 128, "num_threads": 1},
        "eval": {"metric_samples": 256, "linear_max_iter": 100},
    })  # fmt: skip
    result = run_trial(cfg)
    assert result.status == "completed"
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    # ten classes: a random-init conv net's features already give well above the 10 % of chance
    assert 0.2 < result.metrics["random_init_linear_acc"] < 0.6
    assert 0.2 < result.metrics["linear_acc"] < 0.7
