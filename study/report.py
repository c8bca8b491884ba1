"""Write a study's tables and a Markdown report that opens with the answer:

    python -m study.report [NAME ...] [--storage DIR] [--out reports/]

For each study (all under the storage when no name is given) it writes `reports/<name>/`:
`trials.csv` (one row per trial), `summary.csv` (seeds pooled) and `report.md`: the best
configuration with its mean and spread, the collapse region, BYOL against RAFT at equal EMA
decay, the gain over random init, then the tables, then what is missing (errored, diverged,
stopped or unfinished trials), so a partial report never looks complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from study.config import ConfigError
from study.io import atomic_write
from study.results import load_spec_of, summary_frame, trials_frame
from study.runner import SPEC_FILE, trial_count

TABLE_COLUMNS = ["method", "tau", "beta", "predictor", "seeds", "linear_acc_mean", "linear_acc_std", "knn_acc_mean",
                 "random_init_linear_acc_mean", "pred_std_mean", "pred_rank_mean", "collapsed_frac"]  # fmt: skip


def _label(row: pd.Series) -> str:
    beta = "" if pd.isna(row.get("beta")) else f" beta={row['beta']:g}"
    return f"{row['method']} tau={row['tau']:g}{beta} predictor={row['predictor']}"


def answer(name: str, trials: pd.DataFrame, summary: pd.DataFrame, expected: int, metric: str) -> list[str]:
    """The opening lines of the report: what the study found, and how complete it is."""
    lines = [f"# Study `{name}`", ""]
    finished = trials["status"].isin(["completed", "stopped"]).sum()
    lines.append(f"{finished} of {expected} trials reached a final evaluation.")
    if summary.empty:
        return [*lines, "", "No trial has been evaluated yet."]
    col = f"{metric}_mean" if f"{metric}_mean" in summary else "linear_acc_mean"
    best = summary.loc[summary[col].idxmax()]
    std = best.get(col.replace("_mean", "_std"))
    spread = "" if pd.isna(std) else f" ± {std:.4f}"
    lines += ["", f"**Best:** {_label(best)}: {col.removesuffix('_mean')} {best[col]:.4f}{spread} "
              f"over {int(best['seeds'])} seed(s); random init reaches {best['random_init_linear_acc_mean']:.4f}."]  # fmt: skip
    collapsed = summary[summary["collapsed_frac"] > 0.5]
    region = ", ".join(_label(r) for _, r in collapsed.iterrows()) or "none"
    lines += ["", f"**Collapsed** (more than half of the seeds): {region}."]
    gain = summary["linear_acc_mean"] - summary["random_init_linear_acc_mean"]
    lines += ["", f"**Gain over random init** (linear probe): from {gain.min():+.4f} to {gain.max():+.4f}."]
    byol = summary[summary["method"] == "byol"].set_index("tau")["linear_acc_mean"]
    raft = summary[summary["method"] == "raft"].groupby("tau")["linear_acc_mean"].max()
    both = sorted(set(byol.index) & set(raft.index))
    if both:
        lines += ["", "**BYOL against the best RAFT at each EMA decay** (linear accuracy):", "",
                  "| tau | BYOL | best RAFT |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {t:g} | {byol[t]:.4f} | {raft[t]:.4f} |" for t in both]
    return lines


def missing(trials: pd.DataFrame, expected: int) -> list[str]:
    lines = ["## What is missing", ""]
    incomplete = trials[~trials["status"].isin(["completed"])]
    not_started = max(0, expected - len(trials))
    if incomplete.empty and not not_started:
        return [*lines, "Nothing: every trial completed."]
    for _, row in incomplete.iterrows():
        lines.append(f"- {row['trial_id']} ({_label(row)} seed={row['seed']}): {row['status']}"
                     + (f", {row['reason']}" if row["reason"] else ""))  # fmt: skip
    if not_started:
        lines.append(f"- {not_started} trial(s) not started yet")
    return lines


def write_report(study_path: str, out_dir: Path) -> Path:
    spec = load_spec_of(study_path)
    trials = trials_frame(study_path)
    summary = summary_frame(trials)
    expected = trial_count(spec)
    target = out_dir / spec.name
    target.mkdir(parents=True, exist_ok=True)
    with atomic_write(target / "trials.csv", "w") as f:
        trials.to_csv(f, index=False)
    with atomic_write(target / "summary.csv", "w") as f:
        summary.to_csv(f, index=False)
    table = summary[[c for c in TABLE_COLUMNS if c in summary]]
    body = [*answer(spec.name, trials, summary, expected, spec.metric), "",
            "## Configurations (seeds pooled)", "", table.to_markdown(index=False, floatfmt=".4f"), "",
            *missing(trials, expected), ""]  # fmt: skip
    with atomic_write(target / "report.md", "w") as f:
        f.write("\n".join(body))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study.report", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="studies to report (default: all under the storage)")
    parser.add_argument("--storage", default="studies", help="folder of studies (default: studies/)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="where reports go (default: reports/)")
    args = parser.parse_args(argv)
    storage = Path(args.storage)
    try:
        names = args.names or sorted(p.parent.name for p in storage.glob(f"*/{SPEC_FILE}"))
        if not names:
            raise ConfigError(f"--storage: no studies under {storage}")
        for name in names:
            path = storage / name
            if not (path / SPEC_FILE).is_file():
                raise ConfigError(f"{name}: no study of that name under {storage}")
            print(f"wrote {write_report(str(path.resolve()), args.out)}/report.md")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
