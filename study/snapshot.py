"""A guard for Tune's experiment snapshot.

Ray copies its snapshot files (experiment_state-*.json and the search state beside it) into the
storage folder without an atomic rename, so a SIGKILL during the copy leaves a truncated file; Tune
then fails to read it and silently starts the study over, running every trial again. While a study
runs, `SnapshotGuard` keeps a copy of the newest snapshot that reads back whole; before a study is
resumed, `repair` puts that copy back over a truncated snapshot.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

from ray import tune

from study.io import atomic_write

GOOD = ".snapshot-good"


def _session_files(study: Path) -> list[Path]:
    """The newest snapshot's files: experiment_state-<session>.json and its search state."""
    states = sorted(study.glob("experiment_state-*.json"))
    if not states:
        return []
    session = states[-1].name.removeprefix("experiment_state-").removesuffix(".json")
    return sorted(p for p in study.glob(f"*{session}*") if p.is_file())


def _reads_whole(path: Path) -> bool:
    try:
        data = path.read_bytes()
        json.loads(data) if path.suffix == ".json" else pickle.loads(data)
        return True
    except Exception:  # noqa: BLE001 - any unreadable file is simply not whole
        return False


def backup(study: Path) -> None:
    files = _session_files(study)
    if files and all(_reads_whole(p) for p in files):
        for p in files:
            with atomic_write(study / GOOD / p.name) as f:
                f.write(p.read_bytes())


def repair(study: Path) -> bool:
    """Put the last whole snapshot back if the newest one is truncated; True if it did."""
    files = _session_files(study)
    if not files or all(_reads_whole(p) for p in files) or not (study / GOOD).is_dir():
        return False
    for good in (study / GOOD).iterdir():
        if good.is_file() and not good.name.startswith("."):
            shutil.copyfile(good, study / f".{good.name}.tmp")
            (study / f".{good.name}.tmp").replace(study / good.name)
    return True


class SnapshotGuard(tune.Callback):
    def __init__(self, study: str, every_s: float = 1.0) -> None:
        self.study, self.every_s, self.last = Path(study), every_s, 0.0

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            backup(self.study)
