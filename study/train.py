"""Run one trial in this process, for debugging a config:

    python -m study.train CONFIG.yaml [--set key.path=value ...] [--trial N] [--checkpoint-dir DIR] [--out FILE]

CONFIG is a trial config, or a study spec (a file with `name` and `base`) of which trial N of
`--dry-run`'s list is run (default 0); `--set` then addresses spec fields (base.train.epochs=2).
Prints one line per epoch and the final metrics. Exit status: 0 completed (or stopped early by the
collapse stop), 1 diverged, 2 bad input (config, data, checkpoint), with one line naming the culprit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from study.config import ConfigError, TrialConfig, load_trial_config, read_yaml
from study.spec import expand, load_spec, trial_config
from study.engine import OutOfMemory, run_trial
from study.io import write_json

_EPOCH_KEYS = ("loss", "byol_loss", "l_align", "l_cross", "z_std", "p_std", "lr", "tau", "knn_acc", "images_per_s")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def print_progress(metrics: dict[str, Any], epochs: int) -> None:
    if metrics.get("final"):
        return
    fields = " ".join(f"{k}={_fmt(metrics[k])}" for k in _EPOCH_KEYS if k in metrics)
    print(f"epoch {metrics['epoch']}/{epochs} {fields}", flush=True)


def load_config(path: str, overrides: list[str], trial: int) -> TrialConfig:
    """A trial config file, or trial `trial` of a grid or random study spec."""
    if "base" not in read_yaml(path):
        return load_trial_config(path, overrides)
    spec = load_spec(path, overrides)
    if spec.search.kind == "optuna":
        raise ConfigError(f"{path}: optuna proposes its trials while the study runs; pick values with --set base...")
    trials = expand(spec)
    if not 0 <= trial < len(trials):
        raise ConfigError(f"--trial {trial}: {path} has trials 0 to {len(trials) - 1}")
    return trial_config(spec, trials[trial])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="trial config or study spec YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    parser.add_argument("--trial", type=int, default=0, help="which trial of a study spec (see --dry-run)")
    parser.add_argument("--checkpoint-dir", type=Path, help="save state here each epoch; resume from it")
    parser.add_argument("--out", type=Path, help="write the result (final metrics and history) as JSON")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set, args.trial)
        print(f"trial: {cfg.method.name} beta={cfg.method.beta} tau={cfg.teacher.tau} "
              f"predictor={cfg.model.predictor} on {cfg.data.name}, {cfg.train.epochs} epochs", flush=True)  # fmt: skip
        result = run_trial(cfg, lambda m, _: print_progress(m, cfg.train.epochs), args.checkpoint_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OutOfMemory as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out:
        write_json(args.out, {"status": result.status, "message": result.message,
                              "metrics": result.metrics, "history": result.history})  # fmt: skip
    if result.status == "diverged":
        print(f"diverged: {result.message}", file=sys.stderr)
        return 1
    if result.message:
        print(f"{result.status}: {result.message}")
    print(json.dumps({k: v for k, v in result.metrics.items() if k not in _EPOCH_KEYS}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
