"""Studies under a real local Ray instance on the CPU: each search kind end to end."""

import json
import os

import pandas as pd
import pytest

from study.config import ConfigError
from study.spec import StudySpec
from tests.conftest import tiny_tree

ray = pytest.importorskip("ray")
TINY_BASE = tiny_tree(train={"epochs": 2}, eval={"metric_samples": 64, "linear_max_iter": 30, "random_init_baseline": False})


@pytest.fixture(scope="module")
def local_ray():
    from study.runner import RAY_ENV

    os.environ.update(RAY_ENV)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _spec(**fields) -> StudySpec:
    return StudySpec.model_validate({"name": "t", "base": TINY_BASE, **fields})


def _finals(storage, name):
    from ray import tune

    from study.trainable import run_tune_trial

    grid = tune.Tuner.restore(str(storage / name), run_tune_trial).get_results()
    return [r.metrics for r in grid]


@pytest.mark.slow
def test_grid_study_runs_every_trial_once(tmp_path, local_ray):
    from study.runner import run_study

    spec = _spec(name="grid", space={"method.beta": {"grid": [0.0, 1.0]}}, seeds=[0, 1])
    counts = run_study(spec, str(tmp_path), None, restart=False)
    assert counts["completed"] == 4 and counts["unfinished"] == counts["errored"] == 0
    finals = _finals(tmp_path, "grid")
    assert len(finals) == 4 and all(m["status"] == "completed" and m["epochs_done"] == 2 for m in finals)
    stored = json.loads((tmp_path / "grid" / "raft_study.json").read_text())
    assert stored["space"]["method.beta"]["grid"] == [0.0, 1.0]
    # the report agrees with the study's own results
    from study.report import write_report

    out = write_report(str(tmp_path / "grid"), tmp_path / "reports")
    trials = pd.read_csv(out / "trials.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(trials["trial_id"]) == sorted(m["trial_id"] for m in finals) and len(summary) == 2
    by_id = {m["trial_id"]: m for m in finals}
    assert all(row.linear_acc == pytest.approx(by_id[row.trial_id]["linear_acc"]) for row in trials.itertuples())
    first = summary[summary["beta"] == 0.0].iloc[0]
    accs = [m["linear_acc"] for m in finals if m["config"]["params"]["method.beta"] == 0.0]
    assert first["seeds"] == 2 and first["linear_acc_mean"] == pytest.approx(sum(accs) / 2)
    text = (out / "report.md").read_text()
    assert text.startswith("# Study `grid`\n\n4 of 4 trials reached a final evaluation.") and "**Best:**" in text
    assert "Nothing: every trial completed." in text
    # the same command again: nothing left to run, nothing rerun
    again = run_study(spec, str(tmp_path), None, restart=False)
    assert again["completed"] == 4
    assert sorted(m["trial_id"] for m in _finals(tmp_path, "grid")) == sorted(m["trial_id"] for m in finals)


@pytest.mark.slow
def test_changed_spec_is_refused_unless_restart(tmp_path, local_ray):
    from study.runner import run_study

    spec = _spec(name="changed", space={"method.beta": {"grid": [1.0]}})
    run_study(spec, str(tmp_path), None, restart=False)
    other = _spec(name="changed", space={"method.beta": {"grid": [0.5]}})
    with pytest.raises(ConfigError, match=r"different spec .*0\.5.*--restart"):
        run_study(other, str(tmp_path), None, restart=False)
    counts = run_study(other, str(tmp_path), None, restart=True)
    assert counts["completed"] == 1
    assert _finals(tmp_path, "changed")[0]["config"]["params"]["method.beta"] == 0.5


@pytest.mark.slow
def test_random_study_with_collapse_stop(tmp_path, local_ray):
    from study.runner import run_study

    spec = _spec(
        name="random",
        space={"teacher.tau": {"log1m": [0.9, 0.999]}, "method.beta": {"grid": [0.0]}},
        search={"kind": "random", "num_samples": 2, "seed": 1},
        scheduler={"collapse_stop": {"threshold": 5.0, "after_epoch": 1}},
    )
    counts = run_study(spec, str(tmp_path), None, restart=False)
    assert counts["stopped"] == 2
    finals = _finals(tmp_path, "random")
    assert all(m["epochs_done"] == 1 and m["message"].startswith("collapse stop") for m in finals)
    assert all(0.9 <= m["config"]["params"]["teacher.tau"] <= 0.999 for m in finals)


@pytest.mark.slow
def test_optuna_study_with_asha(tmp_path, local_ray):
    from study.runner import run_study

    base = tiny_tree(train={"epochs": 3}, eval={"metric_samples": 64, "linear_max_iter": 30, "knn_every": 1})
    spec = StudySpec.model_validate({
        "name": "optuna", "base": base,
        "space": {"method.beta": {"grid": [-1.0, 1.0]}, "optim.lr": {"loguniform": [1e-4, 1e-2]}},
        "search": {"kind": "optuna", "num_samples": 4, "seed": 0},
        "scheduler": {"kind": "asha", "grace_period": 1, "reduction_factor": 2},
        "seeds": [0], "max_concurrent": 2,
    })  # fmt: skip
    counts = run_study(spec, str(tmp_path), None, restart=False)
    assert counts["completed"] + counts["stopped"] == 4 and counts["unfinished"] == counts["errored"] == 0
    finals = _finals(tmp_path, "optuna")
    # the grid points come first, at the middle of the lr range
    betas = sorted(m["config"]["method.beta"] for m in finals[:2])
    assert betas == [-1.0, 1.0] and finals[0]["config"]["optim.lr"] == pytest.approx(1e-3)


@pytest.mark.slow
def test_an_erroring_trial_is_recorded_and_the_study_goes_on(tmp_path, local_ray):
    from study.report import write_report
    from study.runner import run_study

    # 5000 training images do not exist in digits (1437): that trial raises inside its worker
    spec = _spec(name="errors", space={"data.n_train": {"grid": [256, 5000]}})
    counts = run_study(spec, str(tmp_path), None, restart=False)
    assert counts["completed"] == 1 and counts["errored"] == 1
    trials = pd.read_csv(write_report(str(tmp_path / "errors"), tmp_path / "reports") / "trials.csv")
    assert sorted(trials["status"]) == ["completed", "errored"]
    reason = trials.loc[trials["status"] == "errored", "reason"].iloc[0]
    assert "data.n_train=5000 is larger than the train split (1437 images)" in reason and "(see " in reason
