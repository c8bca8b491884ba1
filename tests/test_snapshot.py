"""Resuming puts back the last whole, consistent Tune snapshot over what a SIGKILL left in the study folder."""

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("ray")
from study.snapshot import GOOD, SnapshotGuard, repair, snapshot_files  # noqa: E402

S1, S2 = "2026-12-04_10-00-00", "2026-12-04_10-05-00"


def _write(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _trials(staging: Path, checkpoint: str = "checkpoint_000001", **statuses: str) -> list:
    """What the guard reads of Tune's trials: their IDs, statuses, checkpoints and shared staging folder."""
    storage = SimpleNamespace(experiment_driver_staging_path=str(staging))
    return [SimpleNamespace(trial_id=t, status=s, checkpoint=SimpleNamespace(path=checkpoint), storage=storage)
            for t, s in (statuses or {"a": "RUNNING"}).items()]  # fmt: skip


def _snapshot(session: str, trials: list[str], asked: int) -> dict[str, bytes]:
    """A set as Tune writes it: experiment state, searcher state and search generator state."""
    return {
        f"experiment_state-{session}.json": json.dumps({"trial_data": trials}).encode(),
        f"searcher-state-{session}.pkl": pickle.dumps({"asked": asked, "by_trial": dict.fromkeys(trials, 0)}),
        f"search_gen_state-{session}.json": pickle.dumps({"counter": asked}),  # a pickle, despite its name
    }


def test_a_searcher_ahead_of_the_experiment_state_and_a_half_copied_later_session_are_undone(tmp_path):
    staging, study = tmp_path / "staging", tmp_path / "study"
    _write(staging, {**_snapshot(S1, ["a"], 1), "basic-variant-state-x.txt": b"not a snapshot file"})
    # a resumed run's staging folder also holds the other .json and .pkl files it downloaded
    whole = {**_snapshot(S1, ["a", "b"], 2), "tuner.pkl": pickle.dumps({"num_samples": 6}), "raft_study.json": b"{}"}
    _write(staging, whole)  # Tune's step wrote the set whole into its staging folder ...
    SnapshotGuard(str(study)).on_step_end(1, _trials(staging))  # ... where the guard copied it
    # The driver died while Ray copied: the searcher state is from a later step than the experiment
    # state (it knows trial c), the spec file it copies back is empty, and a later session's
    # experiment state is cut short.
    ahead = _snapshot(S1, ["a", "b", "c"], 3)
    _write(study, {**whole, f"searcher-state-{S1}.pkl": ahead[f"searcher-state-{S1}.pkl"], "raft_study.json": b""})
    (study / f"experiment_state-{S2}.json").write_bytes(b'{"trial_data": [')
    (study / "notes.txt").write_text("{}")
    assert repair(study)
    assert snapshot_files(study) == whole and (study / "notes.txt").read_text() == "{}"
    assert not (study / f"experiment_state-{S2}.json").exists()
    assert not repair(study)  # nothing left to change


def test_the_guard_saves_trial_checkpoint_and_searcher_events_at_once_and_a_mere_step_at_most_every_every_s(tmp_path):
    staging, study = tmp_path / "staging", tmp_path / "study"
    guard = SnapshotGuard(str(study), every_s=3600)

    def saved() -> dict[str, bytes]:
        return pickle.loads((study / GOOD).read_bytes())

    _write(staging, _snapshot(S1, ["a"], 1))
    guard.on_step_end(1, _trials(staging))
    assert saved() == _snapshot(S1, ["a"], 1)
    stepped = {**_snapshot(S1, ["a"], 1), f"experiment_state-{S1}.json": b'{"trial_data": ["a"], "iteration": 2}'}
    _write(staging, stepped)  # only the experiment state changed: within every_s, not saved yet
    guard.on_step_end(2, _trials(staging))
    assert saved() == _snapshot(S1, ["a"], 1)
    checkpointed = {**_snapshot(S1, ["a"], 1), f"experiment_state-{S1}.json": b'{"trial_data": ["a2"]}'}
    _write(staging, checkpointed)  # trial a recorded a new checkpoint: saved at once
    guard.on_step_end(3, _trials(staging, checkpoint="checkpoint_000002"))
    assert saved() == checkpointed
    ended = {**_snapshot(S1, ["a"], 1), f"experiment_state-{S1}.json": b'{"trial_data": ["a2"], "iteration": 3}'}
    _write(staging, ended)  # trial a ended: saved at once
    done = _trials(staging, checkpoint="checkpoint_000002", a="TERMINATED")
    guard.on_step_end(4, done)
    assert saved() == ended
    _write(staging, stepped)
    guard.on_experiment_end(done)  # Tune's final snapshot always is
    assert saved() == stepped
    _write(staging, _snapshot(S1, ["a", "b"], 2))  # the searcher proposed b: saved at once
    guard.on_step_end(5, done)
    assert saved() == _snapshot(S1, ["a", "b"], 2)
    _write(staging, _snapshot(S2, ["a", "b"], 2))  # a resumed run's new session, beside the old one
    guard.on_step_end(1, done)
    assert saved() == _snapshot(S2, ["a", "b"], 2)


def test_without_the_guard_copy_a_truncated_newest_session_falls_back_to_the_one_before(tmp_path):
    study = tmp_path / "study"
    _write(study, {**_snapshot(S1, ["a"], 1), **_snapshot(S2, ["a", "b"], 2)})
    assert not repair(study)  # all whole: left as it is
    (study / f"searcher-state-{S2}.pkl").write_bytes(pickle.dumps({"asked": 2})[:-3])
    assert repair(study)
    assert snapshot_files(study) == _snapshot(S1, ["a"], 1)
