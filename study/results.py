"""A study's results as pandas frames, read through Ray Tune's own ExperimentAnalysis.

`trials_frame` has one row per trial (its parameters, how it ended, its final metrics);
`summary_frame` pools the seeds of each configuration (mean, std, count of every metric, and the
fraction of seeds that collapsed). Both work on a finished, running or interrupted study.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from study.spec import StudySpec, trial_config

METRICS = ("linear_acc", "knn_acc", "random_init_linear_acc", "random_init_knn_acc",
           *(f"{lvl}_{m}" for lvl in ("feat", "proj", "pred") for m in ("std", "rank", "align", "uniform")))  # fmt: skip
CONFIG_COLUMNS = ("method", "tau", "alpha", "beta", "predictor", "pred_lr_mult", "lr", "weight_decay")


def load_spec_of(path: str) -> StudySpec:
    return StudySpec.model_validate(json.loads((Path(path) / "raft_study.json").read_text()))


def error_line(trial: Any) -> str:
    """The last line of an errored trial's traceback (the exception), and where the rest is."""
    where = trial.error_file or trial.local_path
    try:
        lines = [line for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
        return f"{lines[-1].strip()} (see {where})"
    except (OSError, TypeError, IndexError):
        return f"error, see {where}"


def trials_frame(path: str) -> pd.DataFrame:
    """One row per trial of the study stored at `path`."""
    from ray.tune import ExperimentAnalysis

    from study.runner import outcome
    from study.trainable import params_of

    spec = load_spec_of(path)
    rows = []
    for trial in ExperimentAnalysis(path).trials:
        last = trial.last_result or {}
        cfg = trial_config(spec, params_of(trial.config))
        status = outcome(trial)
        reason = last.get("message") or ""
        if status == "stopped" and not reason:
            reason = f"stopped by ASHA at epoch {last.get('epoch')}"
        if status == "errored":
            reason = error_line(trial)
        rows.append({
            "trial_id": trial.trial_id, "status": status, "method": cfg.method.name, "tau": cfg.teacher.tau,
            "alpha": cfg.method.alpha, "beta": cfg.method.beta if cfg.method.name == "raft" else float("nan"),
            "predictor": cfg.model.predictor, "pred_lr_mult": cfg.optim.predictor_lr_mult, "lr": cfg.optim.lr,
            "weight_decay": cfg.optim.weight_decay, "seed": cfg.train.seed,
            "epochs_done": last.get("epochs_done", last.get("epoch", 0)),
            **{m: last.get(m, float("nan")) for m in METRICS},
            "collapsed": last.get("collapsed"), "reason": reason,
        })  # fmt: skip
    return pd.DataFrame(rows)


def summary_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """Per configuration (seeds pooled): mean, std and count of each metric, and `collapsed_frac`,
    over the trials that reached a final evaluation."""
    done = trials[trials["status"].isin(["completed", "stopped"]) & trials["linear_acc"].notna()].copy()
    keys = [c for c in CONFIG_COLUMNS if c in done]
    if done.empty:
        return pd.DataFrame(columns=[*keys, "seeds", "collapsed_frac"])
    done["collapsed"] = done["collapsed"].astype(float)
    grouped = done.groupby(keys, dropna=False)
    stats = grouped[[m for m in METRICS if m in done]].agg(["mean", "std", "count"])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    stats["seeds"] = grouped["seed"].nunique()
    stats["collapsed_frac"] = grouped["collapsed"].mean()
    return stats.reset_index()
