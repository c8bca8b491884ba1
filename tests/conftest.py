from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from study.config import TrialConfig

SHARED_CIFAR = Path(os.environ.get("RAFT_STUDY_SHARED_CIFAR", Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep decoded-data caches out of the user's home unless the caller chose a cache folder."""
    if "RAFT_STUDY_CACHE" not in os.environ:
        os.environ["RAFT_STUDY_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def shared_cifar() -> Path:
    """The shared CIFAR-10 copy; skips without it, fails when RAFT_STUDY_REQUIRE_SHARED=1 (CI)."""
    if not SHARED_CIFAR.is_file():
        if os.environ.get("RAFT_STUDY_REQUIRE_SHARED") == "1":
            pytest.fail(f"RAFT_STUDY_REQUIRE_SHARED=1 but {SHARED_CIFAR} is missing")
        pytest.skip(f"shared CIFAR-10 copy not found at {SHARED_CIFAR}")
    return SHARED_CIFAR


# A digits trial small enough to train in a couple of seconds.
TINY_TREE: dict = {
    "model": {"width": 8, "depth": 2, "proj_hidden": 32, "proj_dim": 16, "pred_hidden": 32},
    "augment": {"crop_scale": [0.4, 1.0], "flip_p": 0.0},
    "optim": {"lr": 1e-3},
    "train": {"epochs": 2, "batch_size": 128, "num_threads": 1},
    "eval": {"knn_k": 10, "metric_samples": 128, "linear_max_iter": 50},
}


def tiny_tree(**sections: dict) -> dict:
    """TINY_TREE with some fields of its sections replaced."""
    tree = copy.deepcopy(TINY_TREE)
    for name, values in sections.items():
        tree.setdefault(name, {}).update(values)
    return tree


def tiny_config(**sections: dict) -> TrialConfig:
    return TrialConfig.model_validate(tiny_tree(**sections))
