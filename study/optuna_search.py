"""A Tune searcher over an in-memory Optuna study (TPE, seeded), repeating each proposal over seeds.

Why not Ray's OptunaSearch: it reads the metric from every intermediate result (ours has the
final accuracy only at the end), records ASHA-stopped trials as COMPLETE with their partial value
(misleading TPE), and with an SQLite storage cannot be restored after SIGKILL because the database
runs ahead of Tune's snapshot. Here the Optuna study lives inside the searcher, which Tune pickles
into its experiment snapshot: one source of truth. A configuration is told to Optuna once all of its
seeds have finished, as the mean of their metric; one whose seeds were all stopped early is PRUNED,
and one whose seeds all failed is FAIL.
"""

from __future__ import annotations

import itertools
import math
import pickle
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from ray.tune.search import Searcher

from study.spec import StudySpec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """Optuna distributions of the space; a log1m dimension is searched as log(1 - value)."""
    out: dict[str, BaseDistribution] = {}
    for key, dim in spec.space.items():
        kind = dim.kind
        if kind in ("grid", "choice"):
            out[key] = CategoricalDistribution(dim.values)
        elif kind == "uniform":
            out[key] = FloatDistribution(*dim.uniform)
        elif kind == "loguniform":
            out[key] = FloatDistribution(*dim.loguniform, log=True)
        else:
            low, high = dim.log1m
            out[key] = FloatDistribution(1 - high, 1 - low, log=True)
    return out


def decode(spec: StudySpec, raw: dict[str, Any]) -> dict[str, Any]:
    """Optuna's parameters -> trial parameters (undoing the 1 - value of log1m dimensions)."""
    return {k: (1 - v if spec.space[k].kind == "log1m" else v) for k, v in raw.items()}


def grid_points(spec: StudySpec) -> list[dict[str, Any]]:
    """The product of the grid dimensions, other dimensions at their range's geometric middle."""
    grid = {k: d.grid for k, d in spec.space.items() if d.kind == "grid"}
    if not grid:
        return []
    dists = distributions(spec)
    middle = {}
    for key, dist in dists.items():
        if key in grid:
            continue
        if isinstance(dist, CategoricalDistribution):
            middle[key] = dist.choices[0]
        else:
            middle[key] = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
    return [{**middle, **dict(zip(grid, values))} for values in itertools.product(*grid.values())]


@dataclass
class _Config:
    number: int
    params: dict[str, Any]
    seeds_left: list[int]
    values: dict[str, float | None] = field(default_factory=dict)
    errors: int = 0


class SeededOptunaSearch(Searcher):
    def __init__(self, spec: StudySpec) -> None:
        super().__init__(metric=spec.metric, mode=spec.mode)
        self.spec = spec
        direction = "maximize" if spec.mode == "max" else "minimize"
        self.study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=spec.search.seed))
        if spec.search.grid_first:
            for point in grid_points(spec):
                self.study.enqueue_trial(point)
        self.open: dict[int, _Config] = {}
        self.by_trial: dict[str, int] = {}
        self.asked = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        spec = self.spec
        waiting = next((c for c in self.open.values() if c.seeds_left), None)
        if waiting is None:
            if self.asked >= spec.search.num_samples:
                return Searcher.FINISHED
            ot_trial = self.study.ask(distributions(spec))
            self.asked += 1
            waiting = _Config(ot_trial.number, decode(spec, ot_trial.params), list(spec.seeds))
            self.open[waiting.number] = waiting
        seed = waiting.seeds_left.pop(0)
        self.by_trial[trial_id] = waiting.number
        return {**waiting.params, "train.seed": seed}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        number = self.by_trial.pop(trial_id, None)
        if number is None or number not in self.open:
            return
        cfg = self.open[number]
        last = result or {}
        # Stopped by ASHA: no final metric, so None (PRUNED). A collapse stop is evaluated: kept.
        value = last.get(self.metric) if last.get("status") in ("completed", "stopped") else None
        cfg.values[trial_id] = float(value) if value is not None and math.isfinite(value) else None
        cfg.errors += int(error or last.get("status") == "diverged")
        if cfg.seeds_left or len(cfg.values) < len(self.spec.seeds):
            return
        finished = [v for v in cfg.values.values() if v is not None]
        if finished:
            self.study.tell(number, sum(finished) / len(finished))
        else:
            state = optuna.trial.TrialState.FAIL if cfg.errors else optuna.trial.TrialState.PRUNED
            self.study.tell(number, state=state)
        del self.open[number]

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
