"""A study spec -> a Ray Tune experiment: search, scheduler, resources, storage, resume, progress.

The experiment lives in `<storage>/<name>/` (Ray's own layout). Beside Ray's files we keep
`raft_study.json`, the spec the study was started with: running the same command again resumes
the study (finished trials are kept, interrupted ones continue from their last checkpoint, the
Optuna searcher from Tune's snapshot), while a changed spec is refused with the difference
unless `restart` is asked for.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from study.config import ConfigError
from study.io import write_json
from study.spec import StudySpec, describe, expand
from study.storage import is_uri, names_in

SPEC_FILE = "raft_study.json"

# Set before Ray is imported: no auth token file, trials keep the driver's working directory,
# Tune's own progress table off (study.progress prints ours),
# and Tune snapshots the experiment at every step of its loop (the default waits >= 10 s), so that
# after a SIGKILL of the driver no trial that started or finished before it is lost or run twice;
# study.snapshot keeps a whole, consistent copy of that snapshot to resume from.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_CHDIR_TO_TRIAL_DIR": "0", "TUNE_GLOBAL_CHECKPOINT_S": "0",
           "RAY_AIR_NEW_OUTPUT": "0",
           "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}  # fmt: skip


def experiment_path(storage: str, name: str) -> str:
    return f"{storage.rstrip('/')}/{name}" if is_uri(storage) else str(Path(storage).resolve() / name)


def check_storage(storage: str) -> None:
    """A local storage folder must be a writable folder, or creatable in one. Checked by creating
    and removing a probe folder in the nearest existing one, so a refused study leaves nothing
    behind (cloud URIs are left to Ray)."""
    if is_uri(storage):
        return
    path = Path(storage).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        Path(tempfile.mkdtemp(prefix=".raft-study-probe-", dir=existing)).rmdir()
    except OSError as exc:
        raise ConfigError(f"--storage: cannot write to {storage}: {exc.strerror or exc}") from None


def trial_count(spec: StudySpec) -> int:
    if spec.search.kind == "optuna":
        return spec.search.num_samples * len(spec.seeds)
    return len(expand(spec))


def dry_run(spec: StudySpec) -> str:
    """The trial list and the cost estimate, as printed by --dry-run."""
    n = trial_count(spec)
    epochs = spec.base.train.epochs
    lines = [f"study {spec.name}: {n} trials, {spec.search.kind} search, scheduler {spec.scheduler.kind}"]
    if spec.search.kind == "optuna":
        lines.append(f"  TPE proposes {spec.search.num_samples} configurations (seed {spec.search.seed}), "
                     f"each run with seeds {spec.seeds}")  # fmt: skip
        for key, dim in spec.space.items():
            lines.append(f"  {key}: {dim.kind} {dim.values}")
    else:
        for i, params in enumerate(expand(spec)):
            lines.append(f"  {i:4d}  {describe(params)}")
    per_trial = spec.resources
    lines.append(
        f"cost: at most {n * epochs} trial-epochs ({epochs} epochs each, {spec.base.data.name}, "
        f"{spec.base.model.backbone}); each trial takes {per_trial.cpu:g} CPU and {per_trial.gpu:g} GPU"
        + (f", {spec.max_concurrent} at a time" if spec.max_concurrent else "")
    )
    stop = spec.scheduler.collapse_stop
    if spec.scheduler.kind == "asha" or stop:
        lines.append("  early stopping (ASHA or the collapse stop) makes the real cost lower")
    return "\n".join(lines)


def spec_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    a = json.dumps(old, indent=1, sort_keys=True).splitlines()
    b = json.dumps(new, indent=1, sort_keys=True).splitlines()
    changed = [line for line in difflib.unified_diff(a, b, "stored", "given", n=0, lineterm="") if line[:1] in "+-"]
    return "; ".join(line.strip() for line in changed[2:12])


def prepare_storage(spec: StudySpec, storage: str, restart: bool) -> tuple[str, bool]:
    """The experiment path, and whether a study is there to resume (its snapshot repaired first,
    see study.snapshot). Refuses a changed spec."""
    from study.snapshot import repair

    path = experiment_path(storage, spec.name)
    if is_uri(storage):
        return path, not restart and _can_restore(path)
    local = Path(path)
    if restart and local.exists():
        shutil.rmtree(local)
    repaired = local.is_dir() and repair(local)  # first: a resumed run's Ray copies the spec file back too
    stored = local / SPEC_FILE
    given = spec.model_dump(mode="json")
    if stored.is_file():
        old = json.loads(stored.read_text())
        if old != given:
            raise ConfigError(
                f"study {spec.name} already exists in {storage} with a different spec ({spec_difference(old, given)}); "
                "rerun with --restart to start it over, or --name to start another"
            )
    write_json(stored, given)
    if repaired:
        print("the study's snapshot on disk was incomplete (the driver died while Ray copied it); "
              "resuming from the last whole one", flush=True)  # fmt: skip
    return path, _can_restore(path)


def _can_restore(path: str) -> bool:
    """Whether Tune has a snapshot to resume from. Tune's own check looks for its Tuner file only,
    which it writes before the first snapshot; a study killed in between has nothing to resume, and
    Tune's restore would then start it over with num_samples = 1 (the restore path does not pass
    it on), so such a study starts afresh instead."""
    from ray import tune

    return tune.Tuner.can_restore(path) and any(
        n.startswith("experiment_state-") and n.endswith(".json") for n in names_in(path)
    )


class _FailedRestore(logging.Handler):
    """Tune logs a failed restore and then starts the experiment over in the same folder, with
    num_samples = 1 (its restore path does not pass it on), so the finished trials vanish from its
    state and grid trials run again. This turns that log record into an error before any trial starts."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.ERROR)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith("Failed to restore the run state"):
            return
        exc = record.exc_info[1] if record.exc_info else None
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        cause = f"{type(exc).__name__}: {first_line}" if exc else "see Ray's log"
        raise ConfigError(
            f"study in {self.path}: Tune cannot resume from its snapshot ({cause}); nothing was run. Resume it with "
            "the Ray version that wrote it, or rerun with --restart to start it over (deleting its results), or "
            "use --name to start another"
        )


@contextmanager
def _failed_restore_raises(path: str) -> Iterator[None]:
    logger = logging.getLogger("ray.tune.execution.tune_controller")
    handler = _FailedRestore(path)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def build_tuner(spec: StudySpec, storage: str, resume: bool, retry_errored: bool = False):
    """The Tuner of a spec: a new one, or one restored from `storage` to resume (errored trials
    too, from their last checkpoint, when `retry_errored`)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from study.optuna_search import SeededOptunaSearch
    from study.progress import Progress
    from study.snapshot import SnapshotGuard
    from study.trainable import run_tune_trial

    spec_json = spec.model_dump(mode="json")
    trainable = tune.with_resources(
        tune.with_parameters(run_tune_trial, spec_json=spec_json), {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    )
    param_space = {} if spec.search.kind == "optuna" else {"params": tune.grid_search(expand(spec))}
    path = experiment_path(storage, spec.name)
    if resume:
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=retry_errored,
                                  param_space=param_space)  # fmt: skip
    if spec.scheduler.kind == "asha":
        # max_t past the last epoch: ASHA must not stop a trial at its last epoch report, before
        # the final (evaluated) one, which carries the same epoch number.
        scheduler = ASHAScheduler(
            time_attr="epoch", metric="knn_acc", mode="max", max_t=spec.base.train.epochs + 1,
            grace_period=spec.scheduler.grace_period, reduction_factor=spec.scheduler.reduction_factor,
        )  # fmt: skip
    else:
        scheduler = FIFOScheduler()
    search_alg = SeededOptunaSearch(spec) if spec.search.kind == "optuna" else None
    tune_config = tune.TuneConfig(
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=trial_count(spec) if spec.search.kind == "optuna" else 1,
        max_concurrent_trials=spec.max_concurrent,
        trial_dirname_creator=lambda trial: trial.trial_id,
        reuse_actors=True,  # a worker process (torch imported, data cached) runs trial after trial
    )
    run_config = tune.RunConfig(
        name=spec.name,
        storage_path=storage if is_uri(storage) else str(Path(storage).resolve()),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=2),
        callbacks=[Progress(spec)] + ([] if is_uri(storage) else [SnapshotGuard(path)]),
        verbose=0,
    )
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def prepare_data(spec: StudySpec) -> None:
    """Load the base data set once in the driver, so a download or a first decode happens once
    (into its root or the decode cache), not in every trial at the same time, and a missing data
    set, or a batch larger than its train split, is refused before any trial starts."""
    from study.data import check_batch_fits, load_data

    if any(key == "data" or key.startswith("data.") for key in spec.space):
        return
    data = load_data(spec.base.data)
    sizes = spec.space["train.batch_size"].values if "train.batch_size" in spec.space else [spec.base.train.batch_size]
    check_batch_fits(max((b for b in sizes if isinstance(b, int)), default=0), data)


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "log_to_driver": False}
    ray.init(address=address, **kwargs)


def check_resources(spec: StudySpec) -> None:
    """Refuse a study whose trials no node of the Ray cluster can hold (they would wait forever)."""
    import ray

    need_cpu, need_gpu = spec.resources.cpu, spec.resources.gpu
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= need_cpu and r.get("GPU", 0) >= need_gpu for r in nodes):
        return
    most_cpu = max((r.get("CPU", 0) for r in nodes), default=0)
    most_gpu = max((r.get("GPU", 0) for r in nodes), default=0)
    raise ConfigError(f"resources: no node has {need_cpu:g} CPU(s) and {need_gpu:g} GPU(s) for a trial "
                      f"(the largest node has {most_cpu:g} CPUs, {most_gpu:g} GPUs)")  # fmt: skip


def run_study(
    spec: StudySpec, storage: str, address: str | None, restart: bool, retry_errored: bool = False
) -> dict[str, int]:
    """Run or resume a study to the end (or to Ctrl-C); returns trial counts by outcome. Every
    check of the input (storage, data, resources) comes before the first write."""
    os.environ.update({k: v for k, v in RAY_ENV.items() if k not in os.environ})
    check_storage(storage)
    prepare_data(spec)
    init_ray(address)
    check_resources(spec)
    path, resume = prepare_storage(spec, storage, restart)
    print(f"{'resuming' if resume else 'starting'} study {spec.name}: {trial_count(spec)} trials in {path}", flush=True)
    start = time.perf_counter()
    with _failed_restore_raises(path):
        results = build_tuner(spec, storage, resume, retry_errored).fit()
    counts = outcome_counts(results._experiment_analysis.trials, trial_count(spec))
    counts["seconds"] = round(time.perf_counter() - start)
    return counts


def outcome(trial: Any) -> str:
    """completed, stopped (collapse stop or ASHA), diverged, errored, or unfinished."""
    last = trial.last_result or {}
    if trial.status == "ERROR":
        return "errored"
    if trial.status != "TERMINATED":
        return "unfinished"
    if last.get("status") in ("completed", "stopped", "diverged"):
        return last["status"]
    return "stopped" if last.get("final") is False else "unfinished"


def outcome_counts(trials: list[Any], expected: int) -> dict[str, int]:
    """How many trials ended each way; trials the searcher has not proposed yet are unfinished."""
    counts = dict.fromkeys(("completed", "stopped", "diverged", "errored", "unfinished"), 0)
    for trial in trials:
        counts[outcome(trial)] += 1
    counts["unfinished"] += max(0, expected - len(trials))
    return counts
