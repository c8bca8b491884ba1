"""The study spec: a YAML search space, validated before anything starts.

A spec names a study, fixes a `base` trial config, and lists the `space` of parameters that vary
(dotted paths into the trial config, each a grid, a choice or a range), the `seeds` every
configuration is repeated over, how to search, how to stop trials early, and what each trial needs.
Every value a dimension can take is checked against the trial schema up front, so a typo or an
out-of-range grid value is refused with one line before Ray starts.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from study.config import CollapseStop, ConfigError, TrialConfig, first_error, StrictModel, parse_override, read_yaml, set_path

_KINDS = ("grid", "choice", "uniform", "loguniform", "log1m")


class Dimension(StrictModel):
    """One varied parameter. Exactly one of:
    grid: every value is run; choice: values drawn at random / by TPE;
    uniform, loguniform: [low, high]; log1m: [low, high] with log(1 - value) uniform, the natural
    scale for EMA decays near 1 (0.9, 0.99, 0.999 are equally spaced)."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    log1m: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_KINDS)}, got {given or 'none'}")
        kind = given[0]
        value = getattr(self, kind)
        if kind in ("grid", "choice") and not value:
            raise ValueError(f"{kind} is empty")
        if kind in ("uniform", "loguniform", "log1m"):
            low, high = value
            if not low <= high:
                raise ValueError(f"{kind} low {low} > high {high}")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform range must be > 0, got low {low}")
            if kind == "log1m" and high >= 1:
                raise ValueError(f"log1m range must stay below 1 (log of 1 - value), got high {high}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _KINDS if getattr(self, k) is not None)

    @property
    def values(self) -> list[Any]:
        """The grid or choice values, or a range's end points (what validation checks)."""
        return list(getattr(self, self.kind))

    def sample(self, rng: np.random.Generator) -> Any:
        kind, v = self.kind, getattr(self, self.kind)
        if kind in ("grid", "choice"):
            return v[int(rng.integers(len(v)))]
        if kind == "uniform":
            return float(rng.uniform(*v))
        if kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(v[0]), math.log(v[1]))))
        return float(1 - math.exp(rng.uniform(math.log(1 - v[1]), math.log(1 - v[0]))))


class SearchConfig(StrictModel):
    kind: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = Field(1, gt=0, description="random/optuna: configurations drawn (x each grid point)")
    seed: int = 0
    grid_first: bool = Field(True, description="optuna: evaluate the grid points before TPE proposes")


class SchedulerConfig(StrictModel):
    kind: Literal["none", "asha"] = "none"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)
    collapse_stop: CollapseStop | None = None


class Resources(StrictModel):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0, description="fractions share one GPU between trials")


class StudySpec(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    base: TrialConfig = TrialConfig()
    space: dict[str, Dimension] = {}
    seeds: list[int] = Field([0], min_length=1)
    search: SearchConfig = SearchConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    metric: str = "linear_acc"
    mode: Literal["max", "min"] = "max"
    resources: Resources = Resources()
    max_concurrent: int | None = Field(None, gt=0)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        return seeds

    @model_validator(mode="after")
    def _space_fits_the_trial_schema(self) -> StudySpec:
        if self.scheduler.kind == "asha" and self.base.eval.knn_every != 1:
            raise ValueError("scheduler.kind: asha ranks trials by their kNN accuracy every epoch: "
                             "set base.eval.knn_every: 1")  # fmt: skip
        base = self.base.model_dump(mode="json")
        for key, dim in self.space.items():
            if key == "train.seed":
                raise ValueError("space.train.seed: use `seeds` to repeat configurations over seeds")
            if self.search.kind == "grid" and dim.kind != "grid":
                raise ValueError(f"space.{key}: a {dim.kind} needs search.kind random or optuna")
            if self.search.kind == "optuna" and dim.kind in ("grid", "choice"):
                bad = [v for v in dim.values if not isinstance(v, (str, int, float, bool, type(None)))]
                if bad:
                    raise ValueError(f"space.{key}: optuna needs plain values, not {bad[0]!r}")
            for value in dim.values:
                tree = copy.deepcopy(base)
                set_path(tree, key, value)
                try:
                    TrialConfig.model_validate(tree)
                except ValidationError as err:
                    raise ValueError(first_error(err, f"space.{key}={value!r}")) from None
        return self


def load_spec(path: str | Path, overrides: list[str] = (), name: str | None = None) -> StudySpec:
    """Read a spec file, apply `--set key.path=value` overrides and `--name`, and validate."""
    tree = read_yaml(path)
    for text in overrides:
        set_path(tree, *parse_override(text))
    if name is not None:
        tree["name"] = name
    try:
        return StudySpec.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(first_error(err, str(path))) from None


def trial_config(spec: StudySpec, params: dict[str, Any]) -> TrialConfig:
    """The base config with one trial's parameters (dotted keys) set, plus what the study decides
    for every trial: the collapse stop, CPU threads matching the trial's resources, and a GPU memory
    cap matching its GPU fraction."""
    tree = spec.base.model_dump(mode="json")
    for key, value in params.items():
        set_path(tree, key, value)
    if spec.scheduler.collapse_stop is not None:
        set_path(tree, "train.collapse_stop", spec.scheduler.collapse_stop.model_dump())
    if tree["train"]["num_threads"] is None:  # one thread per CPU the trial was given, no oversubscription
        set_path(tree, "train.num_threads", max(1, int(spec.resources.cpu)))
    if tree["train"]["gpu_memory_fraction"] is None and 0 < spec.resources.gpu < 1:  # packed trials share a GPU
        set_path(tree, "train.gpu_memory_fraction", spec.resources.gpu)
    return TrialConfig.model_validate(tree)


def expand(spec: StudySpec) -> list[dict[str, Any]]:
    """The trials of a grid or random search, each its parameters plus `train.seed`, in run order.

    Grid: the product of the grid dimensions. Random: each grid point x `num_samples` draws of the
    other dimensions from a generator seeded by `search.seed`. Every configuration is repeated over
    `seeds`. (An optuna search proposes its trials as it goes; see `study.runner`.)"""
    if spec.search.kind == "optuna":
        raise ValueError("expand: optuna trials are proposed while the study runs")
    grid_keys = [k for k, d in spec.space.items() if d.kind == "grid"]
    drawn_keys = [k for k, d in spec.space.items() if d.kind != "grid"]
    rng = np.random.default_rng(spec.search.seed)
    draws = spec.search.num_samples if spec.search.kind == "random" else 1
    configs = []
    for point in itertools.product(*(spec.space[k].grid for k in grid_keys)):
        for _ in range(draws):
            params = dict(zip(grid_keys, point))
            params.update({k: spec.space[k].sample(rng) for k in drawn_keys})
            configs.append(params)
    return [{**params, "train.seed": seed} for params in configs for seed in spec.seeds]


def describe(params: dict[str, Any]) -> str:
    """A short readable label of a trial's parameters."""
    def fmt(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ",".join(f"{k}={fmt(x)}" for k, x in v.items()) + "}"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k.rsplit('.', 1)[-1]}={fmt(v)}" for k, v in params.items())
