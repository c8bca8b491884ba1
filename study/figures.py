"""The report's figures, drawn with seaborn from the results frames (study/results.py).

Each function takes frames and a target PNG path, draws one figure, writes it atomically and
returns the path, or returns None when the study has nothing to show for it (no diagnostics, no
Optuna, no evaluated trial yet). Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from study.io import atomic_write  # noqa: E402

# Configuration columns other than tau and the method: each distinct combination is one panel.
FACET_COLUMNS = ("predictor", "pred_lr_mult", "lr", "weight_decay", "alpha")
HEATMAPS = {  # summary column -> (title, colour-bar label, colour map)
    "linear_acc_mean": ("Linear probe accuracy", "test accuracy (fraction)", "viridis"),
    "knn_acc_mean": ("kNN accuracy", "test accuracy (fraction)", "viridis"),
    "proj_std_mean": ("Projector-output std x sqrt(d)", "normalised std (1 = isotropic, 0 = collapsed)", "magma"),
    "proj_rank_mean": ("Projector-output effective rank (RankMe)", "effective rank (dimensions)", "magma"),
    "avg_grad_cos_mean": ("Gradient agreement, BYOL vs RAFT (BYOL cells: against RAFT with alpha = beta = 1)",
                          "gradient cosine (mean over epochs)", "coolwarm"),
    "collapse_epoch_mean": ("Epoch where collapse set in (training batches; mean over the seeds that collapsed)",
                            "first epoch with z_std or p_std < threshold", "rocket"),
}


def method_label(method: str, beta: float) -> str:
    """`BYOL` or `RAFT β=<beta>`: one column of a heatmap."""
    return "BYOL" if method == "byol" else f"RAFT β={beta:g}"


def _with_labels(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["config"] = [method_label(m, b) for m, b in zip(out["method"], out["beta"], strict=True)]
    varied = [c for c in FACET_COLUMNS if c in out and out[c].nunique(dropna=False) > 1]
    out["facet"] = out[varied].astype(str).apply(lambda r: ", ".join(f"{k}={v}" for k, v in r.items()), axis=1) if varied else ""
    return out


def _column_order(labels: pd.Series) -> list[str]:
    raft = sorted((lab for lab in labels.unique() if lab != "BYOL"), key=lambda lab: float(lab.split("=")[1]))
    return raft + (["BYOL"] if (labels == "BYOL").any() else [])


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def heatmap(summary: pd.DataFrame, column: str, path: Path) -> Path | None:
    """EMA decay (rows) x method and run-away weight (columns) of one summary column, one panel per
    other varied setting; cells where more than half of the seeds collapsed are hatched and marked C."""
    if column not in summary or summary[column].notna().sum() == 0:
        return None
    title, unit, cmap = HEATMAPS[column]
    s = _with_labels(summary)
    facets = sorted(s["facet"].unique())
    cols = _column_order(s["config"])
    values = s[column].dropna()
    vmin, vmax = float(values.min()), float(values.max())
    if column == "avg_grad_cos_mean":
        vmin, vmax = -1.0, 1.0
    width = max(3.5, 1.2 * len(cols))
    fig, axes = plt.subplots(1, len(facets), figsize=(width * len(facets) + 1.5, 0.7 * s["tau"].nunique() + 2.2),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    for i, (ax, facet) in enumerate(zip(axes[0], facets, strict=True)):
        part = s[s["facet"] == facet]
        grid = part.pivot_table(index="tau", columns="config", values=column, aggfunc="mean").reindex(columns=cols)
        collapsed = part.pivot_table(index="tau", columns="config", values="collapsed_frac", aggfunc="mean")
        collapsed = collapsed.reindex(index=grid.index, columns=cols)
        if grid.empty:
            ax.set_axis_off()
            ax.set_title(f"{facet}: no data yet", fontsize=10)
            continue
        flags = collapsed.to_numpy() > 0.5
        labels = np.array([[("" if pd.isna(v) else f"{v:.3g}") + ("\nC" if c else "") for v, c in zip(vs, cs, strict=True)]
                           for vs, cs in zip(grid.to_numpy(), flags, strict=True)], dtype=object)  # fmt: skip
        sns.heatmap(grid, ax=ax, annot=labels, fmt="", cmap=cmap, vmin=vmin, vmax=vmax, linewidths=0.5,
                    cbar=i == len(facets) - 1, cbar_kws={"label": unit}, annot_kws={"fontsize": 8})  # fmt: skip
        for (r, c), flag in np.ndenumerate(flags):
            if flag:  # hatched under the numbers, which get a backing so they stay legible
                ax.add_patch(plt.Rectangle((c, r), 1, 1, fill=False, hatch="///", edgecolor="white", lw=0, alpha=0.6, zorder=2))
        for text in ax.texts:
            if text.get_text().endswith("C"):
                text.set_zorder(3)
                text.set_bbox({"facecolor": "black", "alpha": 0.55, "edgecolor": "none", "pad": 1.5})
                text.set_color("white")
        ax.set_xlabel("")
        ax.set_ylabel("EMA decay τ" if i == 0 else "")
        ax.set_title(facet or title, fontsize=10)
    fig.supxlabel("method (β: run-away weight of RAFT)", fontsize=10)
    fig.suptitle(f"{title}\n(C, hatched: collapsed in more than half of the seeds)", fontsize=11)
    return _save(fig, path)


def learning_curves(trials: pd.DataFrame, curves: pd.DataFrame, path: Path) -> Path | None:
    """Per configuration (seeds pooled, band = spread), kNN accuracy, projector- and predictor-output
    std and, when measured, gradient agreement against the epoch; one column per EMA decay."""
    if curves.empty:
        return None
    meta = _with_labels(trials)[["trial_id", "tau", "config", "facet"]]
    c = curves.drop(columns=[k for k in meta if k != "trial_id" and k in curves]).merge(meta, on="trial_id")
    if c.empty:
        return None
    c["setting"] = c["config"] + np.where(c["facet"] != "", " / " + c["facet"], "")
    wanted = (("knn_acc", "kNN accuracy (fraction)"), ("z_std", "z_std (projector, x sqrt(d))"),
              ("p_std", "p_std (predictor, x sqrt(d))"), ("grad_cos", "gradient agreement (cosine)"))
    rows = [(m, label) for m, label in wanted if m in c and c[m].notna().any()]
    taus = sorted(c["tau"].unique())
    fig, axes = plt.subplots(len(rows), len(taus), figsize=(4.2 * len(taus) + 2, 3 * len(rows)), squeeze=False,
                             sharex=True, sharey="row")  # fmt: skip
    order = sorted(c["setting"].unique())
    for j, tau in enumerate(taus):
        for i, (metric, label) in enumerate(rows):
            ax = axes[i][j]
            sns.lineplot(data=c[c["tau"] == tau], x="epoch", y=metric, hue="setting", hue_order=order, ax=ax,
                         errorbar="sd", marker="o", markersize=3, legend=(i == 0 and j == len(taus) - 1))  # fmt: skip
            ax.set_ylabel(label if j == 0 else "")
            ax.set_title(f"τ = {tau:g}" if i == 0 else "", fontsize=10)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    handles = axes[0][-1].get_legend()
    if handles is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), title="method / setting", fontsize=8)
    fig.suptitle("Learning curves per configuration (mean over seeds, band: std)", fontsize=11)
    return _save(fig, path)


def accuracy_vs_rank(trials: pd.DataFrame, path: Path) -> Path | None:
    """Each evaluated trial: linear accuracy against the effective rank of its projector outputs."""
    done = _with_labels(trials.dropna(subset=["linear_acc", "proj_rank"]))
    if done.empty:
        return None
    done["state"] = np.where(done["collapsed"].astype(bool), "collapsed", "not collapsed")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sns.scatterplot(data=done, x="proj_rank", y="linear_acc", hue="config", hue_order=_column_order(done["config"]),
                    style="state", style_order=["not collapsed", "collapsed"], s=70, ax=ax)  # fmt: skip
    if "random_init_linear_acc" in done and done["random_init_linear_acc"].notna().any():
        ax.axhline(done["random_init_linear_acc"].mean(), ls="--", color="grey", lw=1, label="random init (mean)")
    ax.set_xlabel("projector-output effective rank (RankMe, dimensions)")
    ax.set_ylabel("linear probe accuracy (fraction)")
    ax.set_title("Accuracy against effective rank, one point per trial", fontsize=11)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    return _save(fig, path)


def optuna_history(values: pd.DataFrame, metric: str, mode: str, path: Path) -> Path | None:
    """Optuna's optimisation history: each finished configuration's value in the order Optuna
    proposed it, with the best so far."""
    done = values.dropna(subset=["value"]).sort_values("number")
    if done.empty:
        return None
    best = done["value"].cummax() if mode == "max" else done["value"].cummin()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(done["number"], done["value"], "o", label="configuration (mean over seeds)")
    ax.plot(done["number"], best, "-", color="C3", label="best so far")
    ax.set_xlabel("Optuna trial number (order proposed)")
    ax.set_ylabel(f"{metric} (fraction)")
    ax.set_title("Optuna optimisation history", fontsize=11)
    ax.legend(fontsize=8)
    return _save(fig, path)


def optuna_importances(importances: dict[str, float], path: Path) -> Path | None:
    """Optuna's parameter importances (fANOVA by default) as horizontal bars."""
    if not importances:
        return None
    names = list(importances)
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5))
    sns.barplot(x=[importances[n] for n in names], y=names, ax=ax, color="C0")
    ax.set_xlabel("importance (fraction of the objective's variance)")
    ax.set_ylabel("parameter")
    ax.set_xlim(0, max(1.0, max(importances.values())) if all(map(math.isfinite, importances.values())) else None)
    ax.set_title("Optuna parameter importances", fontsize=11)
    return _save(fig, path)
