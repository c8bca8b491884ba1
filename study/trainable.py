"""The Ray Tune adapter: one Tune trial runs one engine trial.

It turns the trial's parameters into a TrialConfig, restores the engine's state from Tune's latest
checkpoint when the trial is resumed, and forwards every epoch's metrics (with the state just
saved, as a Tune checkpoint) to `tune.report`. Everything else lives in the engine.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from study.config import TrialConfig
from study.engine import run_trial
from study.spec import StudySpec, trial_config


def params_of(config: dict[str, Any]) -> dict[str, Any]:
    """A Tune config -> the trial's parameters (dotted paths), whichever searcher made it."""
    return dict(config["params"]) if "params" in config else dict(config)


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
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            checkpoint.to_directory(workdir)
        run_trial(cfg, report, checkpoint_dir=workdir)
