"""A guard for Tune's experiment snapshot: resume from a whole and consistent one.

Tune's snapshot is several files of one session (`experiment_state-<session>.json`, the searcher's
`searcher-state-<session>.pkl`, the search generator's and the limiter's `search_gen_state-...json`).
Each step of its loop, Tune writes them into the driver's staging folder, then a background thread
copies them one by one into the study folder, without an atomic rename. A SIGKILL during that copy
leaves a truncated file, or files of different moments: a searcher that has suggested trials the
experiment state does not know (Tune then waits for them forever, or stops early), or a new session's
half-copied experiment state that hides the previous whole one. So `SnapshotGuard`, called right
after Tune has written the staging files, keeps one copy of the whole set in one atomically written
file, and `repair`, before a study is resumed, puts that set back in place of Tune's copies.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import time
from pathlib import Path
from typing import Any

from ray import tune

from study.io import atomic_write

GOOD = ".tune-snapshot"
SESSION = re.compile(r"^(?:experiment_state|searcher-state|search_gen_state|basic-variant-state|callback-states)-(.+)\.(?:json|pkl)$")  # fmt: skip


def session_of(name: str) -> str | None:
    """The session string in the name of one of Tune's snapshot files, None for any other file."""
    match = SESSION.match(name)
    return match.group(1) if match else None


def snapshot_files(folder: Path) -> dict[str, bytes]:
    """The newest session's snapshot files in `folder` (Tune resumes from the largest name), with
    the other .json and .pkl files beside them (tuner.pkl, raft_study.json): a resumed run downloads
    every such file into its staging folder and copies them all back, as non-atomically."""
    if not folder.is_dir():
        return {}
    files = {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".pkl")}
    states = sorted(n for n in files if n.startswith("experiment_state-"))
    if not states:
        return {}
    session = session_of(states[-1])
    return {n: p.read_bytes() for n, p in files.items() if session_of(n) in (session, None)}


def guarded(study: Path) -> dict[str, bytes]:
    """The last snapshot set the guard saved in `study`, {} if there is none."""
    try:
        return pickle.loads((study / GOOD).read_bytes())
    except FileNotFoundError:
        return {}


def save(study: Path, files: dict[str, bytes]) -> None:
    """Keep a snapshot set in the study folder, in one atomically written file."""
    with atomic_write(study / GOOD) as f:
        pickle.dump(files, f, protocol=pickle.HIGHEST_PROTOCOL)


def _companions(files: dict[str, bytes]) -> dict[str, bytes]:
    """Every file of a set but the experiment state: the searcher's and the generator's, which must
    match it (and tuner.pkl, raft_study.json, which do not change within a session)."""
    return {name: data for name, data in files.items() if not name.startswith("experiment_state-")}


def _reads_whole(data: bytes) -> bool:
    """Whether a snapshot file loads: JSON or a pickle (Tune's search_gen_state-*.json is a pickle)."""
    for load in (json.loads, pickle.loads):
        try:
            load(data)
            return True
        except Exception:  # noqa: BLE001, S112 - any unreadable file is simply not whole
            continue
    return False


def repair(study: Path) -> bool:
    """Make Tune's snapshot files in `study` the last whole set the guard saved: overwrite that
    session's files (and the other files Ray copies back) and remove those of any later session.
    Without the guard's copy (a driver killed before the end of its first step), remove the newest
    session's files if one of them does not read back whole, so that Tune resumes from the session
    before or starts over rather than fail. True if anything changed."""
    good = guarded(study)
    if not good:
        newest = {n: data for n, data in snapshot_files(study).items() if session_of(n)}
        if all(_reads_whole(data) for data in newest.values()):
            return False
        for name in newest:
            (study / name).unlink()
        return True
    session = next(session_of(n) for n in good if n.startswith("experiment_state-"))
    changed = False
    for path in study.iterdir():
        other = session_of(path.name)
        if other is not None and other > session and path.is_file():
            path.unlink()
            changed = True
    for name, data in good.items():
        path = study / name
        if not path.is_file() or path.read_bytes() != data:
            with atomic_write(path) as f:
                f.write(data)
            changed = True
    return changed


class SnapshotGuard(tune.Callback):
    """Keeps Tune's snapshot where Tune has just written it whole: after a step of its loop in which
    a trial was added, changed status or recorded a checkpoint (Tune deletes the ones past
    `num_to_keep` as it records a new one, and resumes a trial from the one its snapshot names), or
    the searcher proposed or heard of one (its state must match the experiment state's trial list);
    otherwise at most every `every_s` (the experiment state changes at every step, if only its step
    counter), and after the experiment's final snapshot."""

    def __init__(self, study: str, every_s: float = 0.5) -> None:
        self.study, self.every_s = Path(study), every_s
        self.saved: dict[str, bytes] = {}
        self.saved_trials: list[tuple[str, str, str | None]] = []
        self.saved_at = -math.inf

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._keep(trials, every_s=self.every_s)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._keep(trials, every_s=0.0)

    def _keep(self, trials: list, every_s: float) -> None:
        if not trials:  # every trial's storage shares the experiment's staging folder
            return
        files = snapshot_files(Path(trials[0].storage.experiment_driver_staging_path))
        statuses = [(t.trial_id, t.status, t.checkpoint and t.checkpoint.path) for t in trials]
        now = time.monotonic()
        due = (now - self.saved_at >= every_s or statuses != self.saved_trials
               or _companions(files) != _companions(self.saved))  # fmt: skip
        if files and files != self.saved and due:
            save(self.study, files)
            self.saved, self.saved_trials, self.saved_at = files, statuses, now
