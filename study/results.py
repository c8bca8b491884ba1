"""A study's results as pandas frames, read through Ray Tune's own ExperimentAnalysis.

`trials_frame` has one row per trial (its parameters, how it ended, its final metrics);
`curves_frame` one row per trial and epoch (everything logged per epoch, diagnostics included);
`with_history` adds what the curves say about each trial (when it collapsed, how well BYOL's and
RAFT's gradients agreed); `summary_frame` pools the seeds of each configuration (mean, std, count
of every metric, and the fraction of seeds that collapsed). All work on a finished, running or
interrupted study.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from study import storage
from study.collapse import collapse_epoch
from study.spec import StudySpec, trial_config

T = TypeVar("T")

FINAL_METRICS = ("linear_acc", "knn_acc", "random_init_linear_acc", "random_init_knn_acc",
                 *(f"{lvl}_{m}" for lvl in ("feat", "proj", "pred") for m in ("std", "rank", "align", "uniform")))  # fmt: skip
# Per-epoch diagnostics (study/diagnostics.py), averaged over the epochs a trial measured them.
HISTORY_MEANS = ("grad_cos", "grad_cos_encoder", "grad_cos_projector", "grad_cos_predictor", "pred_eig_align",
                 "pred_identity_dist", "teacher_dist")  # fmt: skip
METRICS = (*FINAL_METRICS, "collapse_epoch", *(f"avg_{d}" for d in HISTORY_MEANS))
TRIAL_COLUMNS = ("trial_id", "status", "method", "tau", "alpha", "beta", "predictor", "pred_lr_mult", "lr",
                 "weight_decay", "seed", "epochs_done", *FINAL_METRICS, "collapsed", "collapse_std", "reason")  # fmt: skip
CONFIG_COLUMNS = ("method", "tau", "alpha", "beta", "predictor", "pred_lr_mult", "lr", "weight_decay")


def load_spec_of(path: str) -> StudySpec:
    """The spec a study was started with (raft_study.json in its folder, local or behind a URI)."""
    return StudySpec.model_validate(json.loads(storage.read_bytes(storage.join(path, "raft_study.json"))))


def error_line(trial: Any) -> str:
    """The last line of an errored trial's traceback (the exception), and where the rest is."""
    where = trial.error_file or trial.local_path
    try:
        lines = [line for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
        return f"{lines[-1].strip()} (see {where})"
    except (OSError, TypeError, IndexError):
        return f"error, see {where}"


def read_while_written(read: Callable[[], T], attempts: int = 10, pause_s: float = 0.3) -> T:
    """`read()`, retried for a moment when it fails: Tune copies its snapshot files into the study
    folder without an atomic rename, so a report of a running study can meet one half-written."""
    for attempt in range(attempts):
        try:
            return read()
        except Exception:  # noqa: BLE001 - a half-written file fails in many ways; the last try raises
            if attempt == attempts - 1:
                raise
            time.sleep(pause_s)
    raise AssertionError("unreachable")


def guarded_snapshot(path: str, kind: str) -> bytes | None:
    """The `kind` file ("experiment_state", "searcher-state") of the snapshot study.snapshot's guard
    saved whole; None for a study behind a URI or without one. Tune's own files in the folder can be
    cut short or be of different moments after a kill, or half-copied while the study runs."""
    if storage.is_uri(path):
        return None
    from study.snapshot import guarded

    return next((data for name, data in guarded(Path(path)).items() if name.startswith(f"{kind}-")), None)


def analysis_of(path: str) -> Any:
    """Tune's ExperimentAnalysis of a study, quiet about trials that have no results yet; read from
    the guard's whole snapshot where there is one (through a hidden file beside Tune's, which
    Tune does not read), else from Tune's newest."""
    import logging

    from ray.tune import ExperimentAnalysis

    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    state = guarded_snapshot(path, "experiment_state")
    if state is not None:
        try:
            fd, tmp = tempfile.mkstemp(dir=path, prefix=".report-experiment_state-", suffix=".json")
        except OSError:  # a read-only copy of a study: Tune's newest snapshot will do
            pass
        else:
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(state)
                return ExperimentAnalysis(tmp)
            finally:
                os.unlink(tmp)
    return read_while_written(lambda: ExperimentAnalysis(path))


def trials_frame(path: str, analysis: Any | None = None) -> pd.DataFrame:
    """One row per trial of the study stored at `path` (read through `analysis` when given)."""
    from study.runner import outcome
    from study.trainable import params_of

    spec = load_spec_of(path)
    rows = []
    for trial in (analysis or analysis_of(path)).trials:
        last = trial.last_result or {}
        cfg = trial_config(spec, params_of(trial.config))
        status = outcome(trial)
        reason = last.get("message") or ""
        if status == "stopped" and not reason:
            reason = f"stopped by ASHA at epoch {last.get('epoch')}"
        if status == "errored":
            reason = error_line(trial)
        if status == "unfinished":
            reason = f"trained {last['epoch']} of {cfg.train.epochs} epochs so far" if "epoch" in last else "not started"
        rows.append({
            "trial_id": trial.trial_id, "status": status, "method": cfg.method.name, "tau": cfg.teacher.tau,
            "alpha": cfg.method.alpha, "beta": cfg.method.beta if cfg.method.name == "raft" else float("nan"),
            "predictor": cfg.model.predictor, "pred_lr_mult": cfg.optim.predictor_lr_mult, "lr": cfg.optim.lr,
            "weight_decay": cfg.optim.weight_decay, "seed": cfg.train.seed,
            "epochs_done": last.get("epochs_done", last.get("epoch", 0)),
            **{m: last.get(m, float("nan")) for m in FINAL_METRICS},
            "collapsed": last.get("collapsed"), "collapse_std": cfg.eval.collapse_std, "reason": reason,
        })  # fmt: skip
    if not rows:  # a study with no trial yet (an Optuna study before its first proposal)
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    return pd.DataFrame(rows).sort_values("trial_id", ignore_index=True)


def curves_frame(path: str, analysis: Any | None = None) -> pd.DataFrame:
    """One row per trial and trained epoch: every per-epoch metric the trial reported."""
    frames = [df for df in (analysis or analysis_of(path)).trial_dataframes.values() if not df.empty and "epoch" in df]
    if not frames:
        return pd.DataFrame(columns=["trial_id", "epoch"])
    curves = pd.concat(frames, ignore_index=True)
    curves = curves[curves["final"].eq(False)] if "final" in curves else curves
    # a trial resumed from an earlier checkpoint may have reported an epoch twice: keep the later one
    return curves.drop_duplicates(["trial_id", "epoch"], keep="last").sort_values(["trial_id", "epoch"])


def with_history(trials: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """`trials` plus `collapse_epoch` (the first epoch whose z_std or p_std fell below the trial's
    collapse threshold; NaN if never) and the mean of each per-epoch diagnostic (`avg_<name>`)."""
    out = trials.copy()
    by_trial = dict(tuple(curves.groupby("trial_id"))) if not curves.empty else {}
    epochs, means = [], {d: [] for d in HISTORY_MEANS}
    for row in out.itertuples():
        c = by_trial.get(row.trial_id)
        has_std = c is not None and {"z_std", "p_std"} <= set(c)
        first = collapse_epoch(c["z_std"].tolist(), c["p_std"].tolist(), row.collapse_std) if has_std else None
        epochs.append(float("nan") if first is None else float(c["epoch"].iloc[first - 1]))
        for d in HISTORY_MEANS:
            means[d].append(c[d].mean() if c is not None and d in c else float("nan"))
    out["collapse_epoch"] = epochs
    for d in HISTORY_MEANS:
        out[f"avg_{d}"] = means[d]
    return out


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


def optuna_study(path: str) -> Any | None:
    """The Optuna study of an Optuna-searched study, as its searcher last saved it into Tune's
    snapshot (None for grid or random search, or before the first save)."""
    import pickle

    import optuna

    whole = guarded_snapshot(path, "searcher-state")
    if whole is not None:
        state = pickle.loads(whole)
    else:
        # one file per session of the study, named by its start time: the newest session holds the newest state
        saved = [n for n in storage.names_in(path) if n.startswith("searcher-state-") and n.endswith(".pkl")]
        if not saved:
            return None
        state = read_while_written(lambda: pickle.loads(storage.read_bytes(storage.join(path, saved[-1]))))
    stack, seen = [state], set()
    while stack:  # the searcher may sit inside Tune's wrappers (a ConcurrencyLimiter): look through
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, optuna.Study):
            return node
        if isinstance(node, dict):
            stack.extend(node.values())
        elif hasattr(node, "__dict__") and not isinstance(node, type):
            stack.extend(vars(node).values())
    return None
