"""The Ray Tune adapter: one Tune trial runs one engine trial.

It turns the trial's parameters into a TrialConfig, restores the engine's furthest saved state when
the trial is resumed, and forwards every epoch's metrics (with the state just saved, as a Tune
checkpoint) to `tune.report`. Everything else lives in the engine.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from pyarrow import fs as pafs
from ray import tune

from study.config import TrialConfig
from study.engine import STATE_FILE, run_trial, saved_progress
from study.spec import StudySpec, trial_config


def params_of(config: dict[str, Any]) -> dict[str, Any]:
    """A Tune config -> the trial's parameters (dotted paths), whichever searcher made it."""
    return dict(config["params"]) if "params" in config else dict(config)


def stored_checkpoints() -> list[tune.Checkpoint]:
    """Every checkpoint in this trial's folder of the study's storage, known to Tune or not."""
    storage = tune.get_context().get_storage()
    found = storage.storage_filesystem.get_file_info(pafs.FileSelector(storage.trial_fs_path, allow_not_found=True))
    return [tune.Checkpoint(info.path, storage.storage_filesystem) for info in found
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_")]  # fmt: skip


def restore_furthest(candidates: list[tune.Checkpoint], into: Path) -> None:
    """Put the state that got furthest among `candidates` at `into`/STATE_FILE (nothing if none is readable).

    Tune restores a trial from the last checkpoint its snapshot recorded, and that snapshot can lag
    the trial's last report: a result processed while the run stops on Ctrl-C, or a driver killed
    between a report and its snapshot. The newer checkpoint is already in the trial's folder, so
    resuming from it trains no epoch twice. (Tune then numbers its next checkpoint from the one it
    recorded and may rewrite that newer folder in place; a kill during that copy leaves it
    unreadable, and the next resume falls back to the one Tune recorded: epochs are retrained, but
    nothing wrong is read.)
    """
    best: tuple[tuple[bool, int], Path] | None = None
    for i, checkpoint in enumerate(candidates):
        copy = into.parent / f"candidate-{i}"
        try:
            checkpoint.to_directory(str(copy))
        except OSError:  # deleted by Tune's num_to_keep while we listed it, or unreadable
            shutil.rmtree(copy, ignore_errors=True)
            continue
        progress = saved_progress(copy / STATE_FILE)
        if progress is not None and (best is None or progress > best[0]):
            if best is not None:
                shutil.rmtree(best[1])
            best = (progress, copy)
        else:
            shutil.rmtree(copy)
    if best is not None:
        into.rmdir()  # empty: made for the state, now replaced by the winning copy
        best[1].rename(into)


def run_tune_trial(config: dict[str, Any], spec_json: dict[str, Any]) -> None:
    """Function trainable: `config` holds the trial's parameters, `spec_json` the study spec."""
    spec = StudySpec.model_validate(spec_json)
    cfg: TrialConfig = trial_config(spec, params_of(config))
    last_knn: dict[str, float] = {}

    def report(metrics: dict[str, Any], state_path: Path | None) -> None:
        # Carry the latest kNN accuracy forward so an ASHA rung always finds its metric.
        if "knn_acc" in metrics:
            last_knn["knn_acc"] = metrics["knn_acc"]
        metrics = {**last_knn, **metrics}
        if state_path is None:
            tune.report(metrics)
        else:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(state_path.parent)))

    with tempfile.TemporaryDirectory(prefix="raft-trial-") as workdir:
        state_dir = Path(workdir) / "state"
        state_dir.mkdir()
        known = tune.get_checkpoint()
        stored = [c for c in stored_checkpoints() if known is None or c.path != known.path]
        restore_furthest([known, *stored] if known is not None else stored, state_dir)
        run_trial(cfg, report, checkpoint_dir=state_dir)
