"""The Tune adapter resumes a trial from the furthest of its saved states, not just the one Tune recorded."""

import shutil

import pytest

from study.engine import STATE_FILE, run_trial, saved_progress
from tests.conftest import tiny_config

tune = pytest.importorskip("ray.tune")


def _states(tmp_path, epochs: int) -> list:
    """Copies of one trial's state after each epoch (and after its end), as a trial folder would hold."""
    cfg = tiny_config(train={"epochs": epochs}, eval={"random_init_baseline": False})
    copies = []

    def keep(metrics, path):
        if path is not None:
            copy = tmp_path / f"checkpoint_{len(copies):06d}"
            shutil.copytree(path.parent, copy)
            copies.append(copy)

    run_trial(cfg, keep, checkpoint_dir=tmp_path / "live")
    return copies


def test_saved_progress_reads_epochs_and_end(tmp_path):
    first, second, end = _states(tmp_path, 2)
    assert saved_progress(first / STATE_FILE) == (False, 1)
    assert saved_progress(second / STATE_FILE) == (False, 2)
    assert saved_progress(end / STATE_FILE) == (True, 2)
    assert saved_progress(tmp_path / "nowhere" / STATE_FILE) is None


def test_furthest_readable_state_wins_whatever_tune_recorded(tmp_path):
    from study.trainable import restore_furthest

    first, second, third, end = _states(tmp_path, 3)
    # Tune recorded the first; the folder also holds the second and truncated copies of the third and the end.
    for partial in (third, end):
        (partial / STATE_FILE).write_bytes((partial / STATE_FILE).read_bytes()[:1000])
    into = tmp_path / "work" / "state"
    into.mkdir(parents=True)
    restore_furthest([tune.Checkpoint.from_directory(str(d)) for d in (first, end, second, third)], into)
    assert saved_progress(into / STATE_FILE) == (False, 2)
    # and the resumed trial trains only the epoch after it
    reports = []
    run_trial(tiny_config(train={"epochs": 3}, eval={"random_init_baseline": False}),
              lambda m, _: reports.append(m), checkpoint_dir=into)  # fmt: skip
    assert [m["epoch"] for m in reports if not m["final"]] == [3] and reports[-1]["final"]


def test_no_readable_state_leaves_a_fresh_start(tmp_path):
    from study.trainable import restore_furthest

    (tmp_path / "checkpoint_000000").mkdir()
    (tmp_path / "checkpoint_000000" / STATE_FILE).write_bytes(b"not a state")
    into = tmp_path / "state"
    into.mkdir()
    restore_furthest([tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000000"))], into)
    assert not (into / STATE_FILE).exists()
