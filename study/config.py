"""The trial configuration: one validated schema that flows YAML -> TrialConfig -> engine.

Every section refuses unknown keys, so a typo in a YAML file is an error, not a silently
ignored setting. `load_trial_config` turns any validation failure into a `ConfigError` whose
message is one line naming the offending field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """Bad user input (config, data, storage): reported as one line, exit status 2."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(StrictModel):
    """Which images to train on; each data set is loaded once into a uint8 tensor."""

    name: Literal["digits", "cifar10", "cifar100", "imagefolder"] = "digits"
    root: str | None = Field(
        None,
        description="cifar10/cifar100: torchvision root folder; imagefolder: a folder holding "
        "train/<class>/ and test/<class>/, or a .tar/.tar.gz of one",
    )
    download: bool = Field(False, description="let torchvision download CIFAR into root")
    n_train: int | None = Field(None, gt=0, description="fixed-seed random subset of the train split")
    n_test: int | None = Field(None, gt=0, description="fixed-seed random subset of the test split")
    subset_seed: int = 0

    @model_validator(mode="after")
    def _root_needed(self) -> DataConfig:
        if self.name == "imagefolder" and not self.root:
            raise ValueError("data.root is required for data.name=imagefolder")
        return self


class AugmentConfig(StrictModel):
    """BYOL/SimCLR CIFAR augmentations; pairs are (view 1, view 2) probabilities."""

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = Field(0.5, ge=0, le=1)
    jitter_p: float = Field(0.8, ge=0, le=1)
    brightness: float = Field(0.4, ge=0)
    contrast: float = Field(0.4, ge=0)
    saturation: float = Field(0.2, ge=0)
    hue: float = Field(0.1, ge=0, le=0.5)
    grayscale_p: float = Field(0.2, ge=0, le=1)
    blur_p: tuple[float, float] = (0.0, 0.0)
    solarize_p: tuple[float, float] = (0.0, 0.2)

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"augment.crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi:
            raise ValueError(f"augment.crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        for name in ("blur_p", "solarize_p"):
            if not all(0 <= p <= 1 for p in getattr(self, name)):
                raise ValueError(f"augment.{name} values must lie in [0, 1], got {getattr(self, name)}")
        return self


class ModelConfig(StrictModel):
    """Online network: backbone -> projector -> predictor (the teacher copies the first two)."""

    backbone: Literal["convnet", "resnet18"] = "convnet"
    width: int = Field(32, gt=0, description="convnet: channels of the first block, doubled per block")
    depth: int = Field(4, ge=1, le=6, description="convnet: number of conv-BN-ReLU-pool blocks")
    proj_hidden: int = Field(512, gt=0)
    proj_dim: int = Field(256, gt=0)
    predictor: Literal["none", "linear", "linear_bn", "mlp"] = "mlp"
    pred_hidden: int = Field(512, gt=0)
    pred_identity_init: bool = Field(False, description="start linear/linear_bn predictors at the identity")


class MethodConfig(StrictModel):
    """byol: cross-view loss; raft: alpha * L_align - beta * L_cross (beta signed)."""

    name: Literal["byol", "raft"] = "raft"
    alpha: float = Field(1.0, ge=0)
    beta: float = 1.0


class TeacherConfig(StrictModel):
    """Mean Teacher: EMA of online backbone + projector with decay tau."""

    tau: float = Field(0.996, ge=0, le=1)
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: BYOL's schedule from tau to 1 over training"
    )


class OptimConfig(StrictModel):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(3e-4, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    predictor_lr_mult: float = Field(1.0, gt=0)


class CollapseStop(StrictModel):
    """End training early once the compared vectors have collapsed: after `after_epoch`, when the
    epoch's projector- or predictor-output std (z_std, p_std) is below `threshold`. The trial is
    still evaluated, so a collapsed cell of a study costs a few epochs instead of all of them."""

    threshold: float = Field(0.05, gt=0)
    after_epoch: int = Field(2, ge=1)


class TrainConfig(StrictModel):
    epochs: int = Field(20, gt=0)
    batch_size: int = Field(256, gt=0)
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    num_threads: int | None = Field(None, gt=0, description="CPU threads for this trial")
    checkpoint_every: int = Field(1, gt=0, description="epochs between saved states, when saving")
    collapse_stop: CollapseStop | None = None
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast for the forward passes on CUDA, fp32 elsewhere"
    )
    channels_last: bool = Field(True, description="CUDA: channels-last memory format for convolutions")
    compile: bool = Field(False, description="torch.compile the online and teacher networks")
    gpu_memory_fraction: float | None = Field(
        None, gt=0, le=1, description="CUDA: cap on this process's share of GPU memory (set from resources.gpu)"
    )


class EvalConfig(StrictModel):
    knn_k: int = Field(200, gt=0)
    knn_temperature: float = Field(0.1, gt=0)
    knn_every: int = Field(0, ge=0, description="epochs between cheap kNN checks; 0 = only at the end")
    linear_max_iter: int = Field(200, gt=0, description="L-BFGS iterations of the linear probe")
    linear_l2: tuple[float, ...] = Field(
        (1e-4, 1e-3, 1e-2), min_length=1,
        description="L2 penalties tried by the linear probe; with several, the best on a held-out 10 %% of "
        "the train split is refitted on all of it",
    )
    metric_samples: int = Field(2048, gt=1, description="test images used for collapse metrics")
    collapse_std: float = Field(
        0.1, gt=0, description="collapsed when projector or predictor std x sqrt(d) falls below this"
    )
    random_init_baseline: bool = True


class DiagnosticsConfig(StrictModel):
    """The paper's claims measured during training (study/diagnostics.py) on a fixed probe batch."""

    every: int = Field(0, ge=0, description="epochs between diagnostics; 0 = off, nothing added to training")
    batch_size: int = Field(256, gt=1, description="probe-batch images, a fixed-seed sample of the train split")


class TrialConfig(StrictModel):
    """Everything one trial needs; nothing else reaches the engine."""

    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    method: MethodConfig = MethodConfig()
    teacher: TeacherConfig = TeacherConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()

    @model_validator(mode="after")
    def _batch_fits(self) -> TrialConfig:
        if self.data.n_train is not None and self.train.batch_size > self.data.n_train:
            raise ValueError(
                f"train.batch_size={self.train.batch_size} is larger than data.n_train={self.data.n_train}"
            )
        return self


def first_error(err: ValidationError, source: str) -> str:
    """The first validation problem as `source: field.path: message`."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "literal_error":
        msg = f"{msg}, got {first.get('input')!r}"
    msg = msg.removeprefix("Value error, ")
    more = len(err.errors()) - 1
    located = f"{where}: {msg}" if where else msg
    return f"{source}: {located}" + (f" (and {more} more problem(s))" if more else "")


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating sections as needed (for --set overrides). A key that
    itself holds dots, as a spec's `space` entries do (`teacher.tau`), is matched whole when present:
    `space.teacher.tau.grid` sets `tree["space"]["teacher.tau"]["grid"]`."""
    parts = dotted.split(".")
    node = tree
    while len(parts) > 1:
        width = next((w for w in range(len(parts) - 1, 1, -1) if ".".join(parts[:w]) in node), 1)
        key, parts = ".".join(parts[:width]), parts[width:]
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {key} is not a section")
        node = child
    node[parts[0]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`key.path=value` with the value read as YAML (so 0.99, true, [1, 2] keep their types)."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected key.path=value")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text}: value is not valid YAML ({exc.__class__.__name__})") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file, with syntax errors reported by line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(f"{path}: YAML syntax error{line}: {problem}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(tree).__name__}")
    return tree


def trial_config_from_dict(tree: dict[str, Any], source: str = "config") -> TrialConfig:
    try:
        return TrialConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(first_error(err, source)) from None


def load_trial_config(path: str | Path, overrides: list[str] = ()) -> TrialConfig:
    """Read, override and validate a trial config file."""
    tree = read_yaml(path)
    for text in overrides:
        set_path(tree, *parse_override(text))
    return trial_config_from_dict(tree, str(path))
