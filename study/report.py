"""Write a study's tables, figures and a report that opens with the answer:

    python -m study.report [NAME ...] [--storage DIR_OR_URI] [--out reports/]
    python -m study.report --compare A B [--storage DIR_OR_URI] [--out reports/]

For each study (all under the storage when no name is given) it writes `reports/<name>/`:
`trials.csv` (one row per trial), `summary.csv` (seeds pooled), `figures/*.png`, `report.md` and
a self-contained `report.html` (figures embedded): the best configuration with its mean and
spread, the collapse region, BYOL against RAFT at equal EMA decay, the gain over random init, the
paper's questions answered from the diagnostics, then the tables, the figures, and what is missing
(errored, diverged, stopped or unfinished trials), so a partial report never looks complete. An
Optuna-searched study also gets `optuna.sqlite3` for optuna-dashboard. `--compare A B` writes
`reports/compare-A-B/` with the two studies side by side.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
from pathlib import Path

import pandas as pd

from study.config import ConfigError
from study.io import atomic_write
from study.results import analysis_of, curves_frame, load_spec_of, optuna_study, summary_frame, trials_frame, with_history
from study.runner import SPEC_FILE, trial_count
from study import storage
from study.spec import StudySpec

TABLE_COLUMNS = ["method", "tau", "beta", "predictor", "seeds", "linear_acc_mean", "linear_acc_std", "knn_acc_mean",
                 "random_init_linear_acc_mean", "proj_std_mean", "proj_rank_mean", "collapsed_frac",
                 "collapse_epoch_mean", "avg_grad_cos_mean"]  # fmt: skip
CONFIG_KEYS = ["method", "tau", "beta", "predictor", "pred_lr_mult", "lr", "weight_decay", "alpha"]


def _label(row: pd.Series) -> str:
    beta = "" if pd.isna(row.get("beta")) else f" beta={row['beta']:g}"
    return f"{row['method']} tau={row['tau']:g}{beta} predictor={row['predictor']}"


def answer(
    name: str, trials: pd.DataFrame, summary: pd.DataFrame, expected: int, metric: str, mode: str = "max"
) -> list[str]:
    """The opening lines of the report: what the study found, and how complete it is."""
    lines = [f"# Study `{name}`", ""]
    finished = trials["status"].isin(["completed", "stopped"]).sum()
    lines.append(f"{finished} of {expected} trials reached a final evaluation.")
    if summary.empty:
        return [*lines, "", "No trial has been evaluated yet."]
    col = f"{metric}_mean"
    if col not in summary or summary[col].isna().all():
        lines += ["", f"(The study's metric {metric} was not reported; ranking by linear accuracy.)"]
        col, mode = "linear_acc_mean", "max"
    best = summary.loc[summary[col].idxmax() if mode == "max" else summary[col].idxmin()]
    std = best.get(col.replace("_mean", "_std"))
    spread = "" if pd.isna(std) else f" ± {std:.4f}"
    lines += ["", f"**Best:** {_label(best)}: {col.removesuffix('_mean')} {best[col]:.4f}{spread} "
              f"over {int(best['seeds'])} seed(s); random init reaches {best['random_init_linear_acc_mean']:.4f}."]  # fmt: skip
    collapsed = summary[summary["collapsed_frac"] > 0.5]
    region = ", ".join(_label(r) for _, r in collapsed.iterrows()) or "none"
    lines += ["", f"**Collapsed** (more than half of the seeds): {region}."]
    gain = summary["linear_acc_mean"] - summary["random_init_linear_acc_mean"]
    lines += ["", f"**Gain over random init** (linear probe): from {gain.min():+.4f} to {gain.max():+.4f}."]
    keys = ["tau", "predictor"] if summary["predictor"].nunique() > 1 else ["tau"]
    byol = summary[summary["method"] == "byol"].groupby(keys)["linear_acc_mean"].max()
    raft = summary[summary["method"] == "raft"].groupby(keys)["linear_acc_mean"].max()
    both = sorted(set(byol.index) & set(raft.index))
    if both:
        where = "EMA decay and predictor" if len(keys) == 2 else "EMA decay"
        lines += ["", f"**BYOL against the best RAFT at each {where}** (linear accuracy):", "",
                  f"| {' | '.join(keys)} | BYOL | best RAFT |", "|---" * (len(keys) + 2) + "|"]  # fmt: skip
        for k in both:
            cells = " | ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in (k if len(keys) == 2 else (k,)))
            lines.append(f"| {cells} | {byol[k]:.4f} | {raft[k]:.4f} |")
    return lines


def setup(spec: StudySpec) -> list[str]:
    """What was run, at what scale: the first thing to know before reading any number."""
    b = spec.base
    images = f"{b.data.n_train or 'all'} train / {b.data.n_test or 'all'} test images"
    model = f"{b.model.backbone}" + (f" (width {b.model.width}, {b.model.depth} blocks)" if b.model.backbone == "convnet" else "")
    return ["## Setup", "",
            f"{b.data.name}{f' `{Path(b.data.root).name}`' if b.data.root else ''} ({images}); {model}, projector {b.model.proj_hidden}->{b.model.proj_dim}, "
            f"predictor {b.model.predictor} unless varied; {b.train.epochs} epochs, batch {b.train.batch_size}, "
            f"{b.optim.name} lr {b.optim.lr:g} ({b.optim.schedule}); EMA decay {b.teacher.tau:g} unless varied. "
            f"Varied: {', '.join(spec.space) or 'nothing'}; seeds {spec.seeds}; {spec.search.kind} search, "
            f"scheduler {spec.scheduler.kind}; diagnostics every {b.diagnostics.every or 'no'} epoch(s)."]  # fmt: skip


def _spearman(a: pd.Series, b: pd.Series) -> float:
    return float(a.rank().corr(b.rank()))


def paper_questions(trials: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The RAFT paper's questions, answered with the study's diagnostics and per-epoch curves."""
    lines = ["## Is BYOL really RAFT here? (diagnostics)", ""]
    agree = summary.dropna(subset=["avg_grad_cos_mean"]) if "avg_grad_cos_mean" in summary else summary.iloc[0:0]
    if agree.empty:
        lines.append("No gradient diagnostics were recorded (set `diagnostics.every` in the spec to measure them).")
    else:
        lines += _agreement(agree)
    return [*lines, *_collapse_timing(trials)]


def _agreement(agree: pd.DataFrame) -> list[str]:
    hi, lo = agree.loc[agree["avg_grad_cos_mean"].idxmax()], agree.loc[agree["avg_grad_cos_mean"].idxmin()]
    lines = ["**Where the gradients of BYOL and RAFT agree** (cosine of the two gradients on the same batch, "
             "RAFT with the trial's alpha and beta, in BYOL trials `method.alpha` and `method.beta`, 1 and 1 "
             "unless set; mean over the measured epochs; 1 = same direction): "
             f"most at {_label(hi)} ({hi['avg_grad_cos_mean']:+.3f}), least at {_label(lo)} ({lo['avg_grad_cos_mean']:+.3f})."]  # fmt: skip
    raft = agree[agree["method"] == "raft"]
    if raft["beta"].nunique() > 1:
        by_beta = raft.groupby("beta")["avg_grad_cos_mean"].mean()
        lines += ["", "Mean agreement by run-away weight (RAFT trials): "
                  + ", ".join(f"β={b:g}: {v:+.3f}" for b, v in by_beta.items()) + "."]  # fmt: skip
    if agree["predictor"].nunique() > 1:
        by_pred = agree.groupby("predictor")["avg_grad_cos_mean"].mean()
        lines += ["", "By predictor kind: " + ", ".join(f"{p}: {v:+.3f}" for p, v in by_pred.items()) + "."]
    if len(agree) >= 3:
        rho = _spearman(agree["avg_grad_cos_mean"], agree["linear_acc_mean"])
        lines += ["", f"**Does agreement go with accuracy?** Spearman rank correlation between agreement and "
                  f"linear accuracy over {len(agree)} configurations: {rho:+.2f}."]  # fmt: skip
    if "avg_pred_eig_align_mean" in agree and agree["avg_pred_eig_align_mean"].notna().any():
        lin = agree.dropna(subset=["avg_pred_eig_align_mean"])
        lines += ["", "**Linear predictors:** eigenvector alignment with the correlation of their inputs (1 = aligned, "
                  f"as Tian et al. 2021 report) from {lin['avg_pred_eig_align_mean'].min():.3f} to "
                  f"{lin['avg_pred_eig_align_mean'].max():.3f}; distance from the identity from "
                  f"{lin['avg_pred_identity_dist_mean'].min():.3f} to {lin['avg_pred_identity_dist_mean'].max():.3f}."]  # fmt: skip
    return lines


def _collapse_timing(trials: pd.DataFrame) -> list[str]:
    """When collapse set in: the first epoch whose training-batch z_std or p_std fell below the
    trial's collapse threshold (a trial may dip and recover, so this can differ from `collapsed`)."""
    if "collapse_epoch" not in trials:  # no per-epoch curves to read it from
        return []
    fell = trials.dropna(subset=["collapse_epoch"])
    trained = int((trials["epochs_done"] > 0).sum())
    if fell.empty:
        return ["", f"**When collapse sets in:** no trial's z_std or p_std fell below its threshold ({trained} trained)."]
    first = fell.loc[fell["collapse_epoch"].idxmin()]
    return ["", f"**When collapse sets in:** in {len(fell)} of {trained} trials that trained, the "
            f"training batches' z_std or p_std fell below the threshold, at epoch {fell['collapse_epoch'].median():g} "
            f"(median); first {_label(first)} at epoch {first['collapse_epoch']:g}."]  # fmt: skip


def missing(trials: pd.DataFrame, expected: int, without_curves: list[str] = ()) -> list[str]:
    """Every trial that did not complete, and trials whose per-epoch results could not be read."""
    lines = ["## What is missing", ""]
    incomplete = trials[~trials["status"].isin(["completed"])]
    not_started = max(0, expected - len(trials))
    lines += [f"- {t}: its per-epoch results (result.json) could not be read, so its curves and diagnostics are "
              "missing; its final metrics come from Tune's snapshot" for t in without_curves]  # fmt: skip
    if incomplete.empty and not not_started:
        return [*lines, "Every trial completed." if without_curves else "Nothing: every trial completed."]
    for _, row in incomplete.iterrows():
        lines.append(f"- {row['trial_id']} ({_label(row)} seed={row['seed']}): {row['status']}"
                     + (f", {row['reason']}" if row["reason"] else ""))  # fmt: skip
    if not_started:
        lines.append(f"- {not_started} trial(s) not started yet")
    return lines


def draw_figures(spec: StudySpec, trials: pd.DataFrame, summary: pd.DataFrame, curves: pd.DataFrame,
                 study: object | None, folder: Path) -> list[tuple[Path, str]]:  # fmt: skip
    """Every figure the study has data for, as (path, caption)."""
    from study import figures

    out = []
    for column, (title, _, _) in figures.HEATMAPS.items():
        stem = column.removesuffix("_mean").removeprefix("avg_")
        out.append((figures.heatmap(summary, column, folder / f"heatmap_{stem}.png"), f"{title} by EMA decay and method"))
    out.append((figures.learning_curves(trials, curves, folder / "learning_curves.png"), "Learning curves"))
    out.append((figures.accuracy_vs_rank(trials, folder / "accuracy_vs_rank.png"), "Accuracy against effective rank"))
    if study is not None:
        values = optuna_values(study)
        out.append((figures.optuna_history(values, spec.metric, spec.mode, folder / "optuna_history.png"),
                    "Optuna optimisation history"))  # fmt: skip
        out.append((figures.optuna_importances(optuna_importances(study), folder / "optuna_importances.png"),
                    "Optuna parameter importances"))  # fmt: skip
    return [(path, caption) for path, caption in out if path is not None]


def optuna_values(study: object) -> pd.DataFrame:
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]  # type: ignore[attr-defined]
    return pd.DataFrame({"number": [t.number for t in done], "value": [t.value for t in done]})


def optuna_importances(study: object) -> dict[str, float]:
    """Optuna's parameter importances, or {} when too few configurations have finished."""
    import optuna

    try:
        return dict(optuna.importance.get_param_importances(study))  # type: ignore[arg-type]
    except (RuntimeError, ValueError):
        return {}


def export_optuna(study: object, path: Path) -> None:
    """Copy an Optuna study into an SQLite file that optuna-dashboard opens (written then renamed).
    It is the searcher's own study: a `log1m` dimension appears as 1 - value, the scale it searched."""
    import optuna

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    copy = optuna.create_study(storage=f"sqlite:///{tmp}", study_name=path.parent.name,
                               direction=study.direction)  # type: ignore[attr-defined]  # fmt: skip
    copy.add_trials(study.trials)  # type: ignore[attr-defined]
    del copy
    tmp.replace(path)


def to_html(markdown_text: str, base: Path, title: str) -> str:
    """The Markdown report as one self-contained HTML page, its PNG figures embedded as data URIs."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])

    def embed(match: re.Match[str]) -> str:
        data = base64.b64encode((base / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 6px}"
             "img{max-width:100%}")  # fmt: skip
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head><body>{body}</body></html>"


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def _write_pages(target: Path, lines: list[str], title: str) -> None:
    text = "\n".join(lines)
    _write_text(target / "report.md", text)
    _write_text(target / "report.html", to_html(text, target, title))


def study_frames(study_path: str) -> tuple[StudySpec, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """spec, trials (with what their curves say), seed-pooled summary, per-epoch curves."""
    spec = load_spec_of(study_path)
    analysis = analysis_of(study_path)  # read once: both frames come from it
    curves = curves_frame(study_path, analysis)
    trials = with_history(trials_frame(study_path, analysis), curves)
    return spec, trials, summary_frame(trials), curves


def write_report(study_path: str, out_dir: Path) -> Path:
    spec, trials, summary, curves = study_frames(study_path)
    expected = trial_count(spec)
    target = out_dir / spec.name
    target.mkdir(parents=True, exist_ok=True)
    with atomic_write(target / "trials.csv", "w") as f:
        trials.to_csv(f, index=False)
    with atomic_write(target / "summary.csv", "w") as f:
        summary.to_csv(f, index=False)
    study = optuna_study(study_path) if spec.search.kind == "optuna" else None
    if study is not None:
        export_optuna(study, target / "optuna.sqlite3")
    figs = draw_figures(spec, trials, summary, curves, study, target / "figures")
    table = summary[[c for c in TABLE_COLUMNS if c in summary]].copy()
    if "random_init_linear_acc_mean" in table:  # how far each configuration sits above random init
        table.insert(table.columns.get_loc("random_init_linear_acc_mean") + 1, "gain_over_random_init",
                     table["linear_acc_mean"] - table["random_init_linear_acc_mean"])  # fmt: skip
    body = [*answer(spec.name, trials, summary, expected, spec.metric, spec.mode), "",
            *setup(spec), "", *paper_questions(trials, summary), "",
            "## Configurations (seeds pooled)", "", table.to_markdown(index=False, floatfmt=".4f"), "",
            "## Figures", ""]  # fmt: skip
    for path, caption in figs:
        body += [f"### {caption}", "", f"![{caption}]({path.relative_to(target)})", ""]
    if study is not None:
        body += [f"The Optuna study is in `optuna.sqlite3`: `optuna-dashboard sqlite:///{target / 'optuna.sqlite3'}`.", ""]
    trained = trials.loc[trials["epochs_done"] > 0, "trial_id"]
    without_curves = sorted(set(trained) - set(curves["trial_id"])) if "trial_id" in curves else []
    body += [*missing(trials, expected, without_curves), ""]
    _write_pages(target, body, f"Study {spec.name}")
    return target


def compare(a: str, b: str, out_dir: Path) -> Path:
    """Two studies side by side: each one's best, and every configuration they share."""
    names, frames = [], []
    for path in (a, b):
        spec, trials, summary, _ = study_frames(path)
        names.append(spec.name)
        frames.append((spec, trials, summary))
    target = out_dir / f"compare-{names[0]}-{names[1]}"
    target.mkdir(parents=True, exist_ok=True)
    lines = [f"# `{names[0]}` against `{names[1]}`", ""]
    for name, (spec, trials, summary) in zip(names, frames, strict=True):
        head = answer(name, trials, summary, trial_count(spec), spec.metric, spec.mode)
        lines += [f"**{name}:** " + " ".join(line for line in head[2:5] if line), ""]
    keys = [k for k in CONFIG_KEYS if all(k in s for _, _, s in frames)]
    shown = ["seeds", "linear_acc_mean", "linear_acc_std", "knn_acc_mean", "collapsed_frac"]
    left, right = (s[[*keys, *[c for c in shown if c in s]]] for _, _, s in frames)
    both = left.merge(right, on=keys, suffixes=(f" {names[0]}", f" {names[1]}"))
    lines += ["## Configurations in both studies (seeds pooled)", ""]
    if both.empty:
        lines.append("None: the two studies share no configuration.")
    else:
        both["linear_acc difference"] = both[f"linear_acc_mean {names[1]}"] - both[f"linear_acc_mean {names[0]}"]
        lines.append(both.to_markdown(index=False, floatfmt=".4f"))
    lines += ["", f"Only in `{names[0]}`: {len(left) - len(both)} configuration(s); only in `{names[1]}`: "
              f"{len(right) - len(both)}.", ""]  # fmt: skip
    _write_pages(target, lines, f"{names[0]} against {names[1]}")
    return target


def _study_path(location: str, name: str) -> str:
    path = storage.join(location, name)
    if "/" in name or not storage.exists(storage.join(path, SPEC_FILE)):
        raise ConfigError(f"{name}: no study of that name under {location}")
    return path if storage.is_uri(path) else str(Path(path).resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m study.report", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="studies to report (default: all under the storage)")
    parser.add_argument("--storage", default="studies", help="folder or URI (s3://, gs://, file://) of studies (default: studies/)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="where reports go (default: reports/)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="put two studies side by side")
    args = parser.parse_args(argv)
    location = args.storage
    try:
        if args.compare:
            a, b = (_study_path(location, n) for n in args.compare)
            print(f"wrote {compare(a, b, args.out)}/report.md")
            return 0
        names = args.names or [n for n in storage.names_in(location)
                                if storage.exists(storage.join(storage.join(location, n), SPEC_FILE))]  # fmt: skip
        if not names:
            raise ConfigError(f"--storage: no studies under {location}")
        paths = [_study_path(location, name) for name in names]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for name, path in zip(names, paths, strict=True):  # one unreadable study does not stop the others
        try:
            print(f"wrote {write_report(path, args.out)}/report.md", flush=True)
        except Exception as exc:  # noqa: BLE001 - reported per study, with its name
            print(f"error: {name}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
