"""Studies under a real local Ray instance on the CPU: each search kind end to end."""

import json
import os
import pickle
from pathlib import Path

import pandas as pd
import pytest

from study.config import ConfigError
from study.spec import StudySpec
from tests.conftest import tiny_tree

ray = pytest.importorskip("ray")
TINY_SECTIONS = {"train": {"epochs": 2}, "eval": {"metric_samples": 64, "linear_max_iter": 30, "random_init_baseline": False}}
TINY_BASE = tiny_tree(**TINY_SECTIONS)


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


def test_a_study_killed_before_its_first_snapshot_starts_afresh(tmp_path):
    """Tune writes its Tuner file before its first snapshot; resuming from the file alone would make
    Tune start the study over with num_samples = 1."""
    from study.runner import prepare_storage

    spec = _spec()
    path, resume = prepare_storage(spec, str(tmp_path), restart=False)
    assert not resume
    (Path(path) / "tuner.pkl").write_bytes(b"written at the start of Tuner.fit")
    assert prepare_storage(spec, str(tmp_path), restart=False) == (path, False)
    (Path(path) / "experiment_state-2026-12-05_02-32-34.json").write_text('{"trial_data": []}')
    assert prepare_storage(spec, str(tmp_path), restart=False) == (path, True)


@pytest.mark.slow
def test_grid_study_runs_every_trial_once(tmp_path, local_ray, monkeypatch):
    from study.progress import Progress
    from study.report import write_report
    from study.runner import run_study
    from tests.test_interrupt import check_partial_report

    # A report written while the study runs (when its first trial ends) marks what is still missing.
    reported = []
    on_complete = Progress.on_trial_complete

    def report_once(self, *args, **kwargs):
        on_complete(self, *args, **kwargs)
        if not reported:
            reported.append(check_partial_report(tmp_path / "grid", tmp_path / "during", 4))

    monkeypatch.setattr(Progress, "on_trial_complete", report_once)

    base = tiny_tree(**{**TINY_SECTIONS, "diagnostics": {"every": 1, "batch_size": 64}})
    spec = _spec(name="grid", base=base, space={"method.beta": {"grid": [0.0, 1.0]}}, seeds=[0, 1])
    counts = run_study(spec, str(tmp_path), None, restart=False)
    assert counts["completed"] == 4 and counts["unfinished"] == counts["errored"] == 0
    finals = _finals(tmp_path, "grid")
    assert len(finals) == 4 and all(m["status"] == "completed" and m["epochs_done"] == 2 for m in finals)
    stored = json.loads((tmp_path / "grid" / "raft_study.json").read_text())
    assert stored["space"]["method.beta"]["grid"] == [0.0, 1.0]
    assert reported, "no report was written while the study ran"
    # the report agrees with the study's own results
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
    _check_figures_and_diagnostics(out, tmp_path / "grid", trials)
    # the same study read through a URI (file:// standing in for s3://) gives the same tables
    from study.report import main as report_main

    assert report_main(["grid", "--storage", f"file://{tmp_path}", "--out", str(tmp_path / "via-uri")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "via-uri" / "grid" / "trials.csv"), trials)
    # a result file cut mid-line (a crash during Tune's append): the report still comes, and says so
    damaged = tmp_path / "grid" / trials["trial_id"].iloc[0] / "result.json"
    damaged.write_bytes(damaged.read_bytes()[:-40])
    again = write_report(str(tmp_path / "grid"), tmp_path / "reports-after-damage")
    assert len(pd.read_csv(again / "trials.csv")) == 4
    assert f"- {trials['trial_id'].iloc[0]}: its per-epoch results (result.json) could not be read" in (again / "report.md").read_text()
    # Tune's newest snapshot cut short (a kill during its copy): the report reads the guard's whole
    # copy, and the rerun puts it back before resuming
    state = max((tmp_path / "grid").glob("experiment_state-*.json"))
    whole = state.read_bytes()
    state.write_bytes(whole[: len(whole) // 2])
    cut = write_report(str(tmp_path / "grid"), tmp_path / "reports-after-cut")
    pd.testing.assert_frame_equal(pd.read_csv(cut / "trials.csv"), pd.read_csv(again / "trials.csv"))
    # the same command again: nothing left to run, nothing rerun
    again = run_study(spec, str(tmp_path), None, restart=False)
    assert again["completed"] == 4 and state.read_bytes() == whole
    assert sorted(m["trial_id"] for m in _finals(tmp_path, "grid")) == sorted(m["trial_id"] for m in finals)


def _check_figures_and_diagnostics(out, study, trials):
    """Every figure is a PNG that opens, the HTML embeds them all, and the diagnostics in the tables
    are the means of what the trials reported per epoch."""
    from PIL import Image

    text = (out / "report.md").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    names = {f.stem for f in figures}
    assert {"heatmap_linear_acc", "heatmap_knn_acc", "heatmap_proj_std", "heatmap_proj_rank", "heatmap_grad_cos",
            "learning_curves", "accuracy_vs_rank"} <= names, names  # fmt: skip
    for f in figures:
        with Image.open(f) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        assert f"](figures/{f.name})" in text
    html = (out / "report.html").read_text()
    assert html.count("src=\"data:image/png;base64,") == len(figures) and "<table>" in html
    assert "## Is BYOL really RAFT here? (diagnostics)" in text and "**Where the gradients of BYOL and RAFT agree**" in text
    for row in trials.itertuples():
        epochs = [json.loads(line) for line in (study / row.trial_id / "result.json").read_text().splitlines()]
        per_epoch = [r["grad_cos"] for r in epochs if not r["final"]]
        assert len(per_epoch) == 2 and row.avg_grad_cos == pytest.approx(sum(per_epoch) / 2)


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
def test_a_snapshot_tune_cannot_restore_is_refused_not_restarted(tmp_path, local_ray):
    """Tune logs a failed restore and starts the study over (with num_samples = 1); the runner
    refuses instead, naming the cause, and leaves the study folder as it was."""
    from study.runner import run_study
    from study.snapshot import GOOD

    spec = _spec(name="broken", space={"method.beta": {"grid": [1.0]}})
    assert run_study(spec, str(tmp_path), None, restart=False)["completed"] == 1
    folder = tmp_path / "broken"
    (folder / GOOD).unlink()  # no guard copy to repair from
    state = next(folder.glob("experiment_state-*.json"))
    state.write_text("{}")  # whole JSON, so not repaired, but not Tune's
    before = {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"Tune cannot resume from its snapshot \(KeyError: .*--restart"):
        run_study(spec, str(tmp_path), None, restart=False)
    after = {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert {k for k in after if after[k] != before[k]} <= {Path("raft_study.json"), Path(".validate_storage_marker")}
    assert state.read_text() == "{}"


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
    # the snapshot guard holds Tune's final snapshot, searcher included, to resume from
    from study.snapshot import GOOD, snapshot_files

    guarded = pickle.loads((tmp_path / "optuna" / GOOD).read_bytes())
    on_disk = snapshot_files(tmp_path / "optuna")
    assert all(on_disk[n] == data for n, data in guarded.items())
    assert any(n.startswith("searcher-state-") for n in guarded)
    finals = _finals(tmp_path, "optuna")
    # the grid points come first, at the middle of the lr range
    betas = sorted(m["config"]["method.beta"] for m in finals[:2])
    assert betas == [-1.0, 1.0] and finals[0]["config"]["optim.lr"] == pytest.approx(1e-3)
    # the report exports the searcher's own Optuna study for optuna-dashboard, and plots its history
    import optuna

    from study.report import write_report

    out = write_report(str(tmp_path / "optuna"), tmp_path / "reports")
    exported = optuna.load_study(study_name="optuna", storage=f"sqlite:///{out / 'optuna.sqlite3'}")
    states = [t.state.name for t in exported.trials]
    assert len(states) == 4 and set(states) <= {"COMPLETE", "PRUNED"}, states
    completed = {m["linear_acc"] for m in finals if m.get("status") == "completed"}
    assert {round(t.value, 6) for t in exported.trials if t.value is not None} == {round(v, 6) for v in completed}
    assert (out / "figures" / "optuna_history.png").is_file()


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


@pytest.mark.slow
def test_errored_trial_is_retried_only_when_asked(tmp_path, local_ray):
    from study.runner import run_study
    from tests.test_data import _make_folder

    # One trial's data folder is not there yet (an unmounted disk): it errors, the other completes.
    here, late = _make_folder(tmp_path / "here"), tmp_path / "late"
    base = tiny_tree(**TINY_SECTIONS, data={"name": "imagefolder", "root": str(here)})
    base["train"]["batch_size"] = 2
    base["eval"].update(knn_k=3, metric_samples=4)
    spec = _spec(name="retry", base=base, space={"data.root": {"grid": [str(here), str(late)]}})
    assert run_study(spec, str(tmp_path), None, restart=False)["errored"] == 1
    _make_folder(late)
    again = run_study(spec, str(tmp_path), None, restart=False)
    assert again["errored"] == 1 and again["completed"] == 1  # not retried unasked
    retried = run_study(spec, str(tmp_path), None, restart=False, retry_errored=True)
    assert retried["completed"] == 2 and retried["errored"] == 0
    finals = _finals(tmp_path, "retry")
    assert sorted(m["config"]["params"]["data.root"] for m in finals) == sorted([str(here), str(late)])
