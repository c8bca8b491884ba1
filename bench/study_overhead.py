"""Study overhead: K tiny digits trials through `python -m study.run` (Ray Tune, one trial at a
time, a checkpoint every epoch, Ray's start-up included) against the same K trials called one
after another in one process. Prints both wall times and their ratio, measured in one run.

    python bench/study_overhead.py [--trials 6] [--epochs 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = {
    "model": {"width": 16, "depth": 3, "proj_hidden": 128, "proj_dim": 64, "pred_hidden": 128},
    "augment": {"crop_scale": [0.4, 1.0], "flip_p": 0.0},
    "optim": {"lr": 1e-3},
    "train": {"batch_size": 128, "num_threads": 1},
    "eval": {"knn_k": 20},
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    from study.engine import run_trial
    from study.spec import StudySpec, expand, trial_config

    base = {**BASE, "train": {**BASE["train"], "epochs": args.epochs}}
    betas = [round(-1 + 2 * i / max(1, args.trials - 1), 3) for i in range(args.trials)]
    tree = {"name": "overhead", "base": base, "space": {"method.beta": {"grid": betas}}, "max_concurrent": 1}
    spec = StudySpec.model_validate(tree)

    start = time.perf_counter()
    for params in expand(spec):
        run_trial(trial_config(spec, params))
    direct = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "overhead.yaml"
        path.write_text(yaml.safe_dump(tree))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "study.run", str(path), "--storage", str(Path(tmp) / "studies")],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
        through_ray = time.perf_counter() - start

    print(f"{args.trials} trials x {args.epochs} epochs on digits, one at a time, 1 thread each")
    print(f"in one process:         {direct:7.1f} s")
    print(f"through study.run:      {through_ray:7.1f} s  (Ray start-up, worker processes, checkpoints)")
    print(f"ratio study.run/direct: {through_ray / direct:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
