"""One trial: pretrain an online network against its Mean Teacher, then evaluate it.

The engine knows nothing about Ray. It reports each epoch's metrics through a callback together
with the path of the state it has just saved (when it saves), so a scheduler can checkpoint and
resume it. A run resumed from a saved state ends with the same numbers as an uninterrupted one
on the CPU: the state holds the networks, the optimiser, the step count (the learning-rate and
EMA schedules are functions of it) and the random generator that drives shuffling and augmentation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from study.augment import augment, plain
from study.collapse import collapse_metrics, is_collapsed, spread
from study.config import ConfigError, OptimConfig, TrialConfig
from study.data import ImageData, check_batch_fits, load_data
from study.diagnostics import diagnose
from study.evaluate import knn_accuracy, linear_probe
from study.io import atomic_write
from study.losses import byol_loss, loss_terms, raft_loss
from study.models import OnlineNet, make_online
from study.teacher import ema_update, make_teacher, tau_at

Reporter = Callable[[dict[str, Any], "Path | None"], None]
STATE_FILE = "state.pt"
_FINITE_CHECK_STEPS = 25  # host syncs to catch a NaN early, without one per step
_LOGGED = ("loss", "byol_loss", "l_align", "l_cross", "z_std", "p_std")


@dataclass
class TrialResult:
    """`status` is completed or diverged; `metrics` the final ones; `history` one dict per epoch."""

    status: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name} asked for, but no CUDA device is available")
    return device


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Linear warm-up from 0, then constant or cosine decay to 0 at the last step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(cfg: OptimConfig, online: OnlineNet) -> torch.optim.Optimizer:
    """One group for the encoder, one for the predictor with its own learning-rate multiplier."""
    groups = [{"params": list(online.encoder.parameters()), "base_lr": cfg.lr}]
    pred_params = list(online.predictor.parameters())
    if pred_params:
        groups.append({"params": pred_params, "base_lr": cfg.lr * cfg.predictor_lr_mult})
    for g in groups:
        g["lr"] = g["base_lr"]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"optim.name: unknown optimiser {cfg.name!r}")


def objective(cfg: TrialConfig, p1: Tensor, p2: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
    if cfg.method.name == "byol":
        return byol_loss(p1, p2, t1, t2)
    return raft_loss(p1, p2, t1, t2, cfg.method.alpha, cfg.method.beta)


@torch.no_grad()
def embed(
    online: OnlineNet, images: Tensor, transform: Callable[[Tensor], Tensor], batch: int = 1024
) -> dict[str, Tensor]:
    """Backbone features, projector outputs and predictor outputs in eval mode."""
    was_training = online.training
    online.eval()
    out: dict[str, list[Tensor]] = {"feat": [], "proj": [], "pred": []}
    for start in range(0, len(images), batch):
        h = online.encoder.backbone(transform(images[start : start + batch]))
        z = online.encoder.projector(h)
        for key, v in (("feat", h), ("proj", z), ("pred", online.predictor(z))):
            out[key].append(v.float())
    online.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def plain_embeddings(online: OnlineNet, data: ImageData) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Embeddings of the unaugmented train and test splits."""
    to_input = lambda x: plain(x, data.mean, data.std)  # noqa: E731
    return embed(online, data.train_x, to_input), embed(online, data.test_x, to_input)


def knn_of(train_f: Tensor, test_f: Tensor, data: ImageData, cfg: TrialConfig) -> float:
    e = cfg.eval
    return knn_accuracy(train_f, data.train_y, test_f, data.test_y, len(data.classes), e.knn_k, e.knn_temperature)


def probe(online: OnlineNet, data: ImageData, cfg: TrialConfig) -> tuple[dict[str, float], dict[str, Tensor]]:
    """Linear and kNN accuracy of the frozen backbone on unaugmented images, plus the test embeddings."""
    train, test = plain_embeddings(online, data)
    e = cfg.eval
    accs = {
        "linear_acc": linear_probe(
            train["feat"], data.train_y, test["feat"], data.test_y, len(data.classes), e.linear_l2, e.linear_max_iter
        ),
        "knn_acc": knn_of(train["feat"], test["feat"], data, cfg),
    }
    return accs, test


def evaluate(online: OnlineNet, data: ImageData, cfg: TrialConfig) -> dict[str, Any]:
    """Probe accuracies and collapse metrics on a fixed-seed sample of the test split."""
    accs, test = probe(online, data, cfg)
    gen = torch.Generator(device=data.test_x.device).manual_seed(cfg.train.seed + 1)
    idx = torch.randperm(len(data.test_x), generator=gen, device=gen.device)[: cfg.eval.metric_samples]
    views = [
        embed(online, data.test_x[idx], lambda x, v=v: augment(x, cfg.augment, v, data.mean, data.std, gen))
        for v in (0, 1)
    ]
    metrics = collapse_metrics({k: v[idx] for k, v in test.items()}, *views)
    metrics["collapsed"] = is_collapsed(metrics["proj_std"], metrics["pred_std"], cfg.eval.collapse_std)
    return {**accs, **metrics}


class Trial:
    """The mutable state of one trial and the steps that advance it."""

    def __init__(self, cfg: TrialConfig, data: ImageData | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.train.device)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        self.data = (data if data is not None else load_data(cfg.data)).to(self.device)
        n = len(self.data.train_x)
        check_batch_fits(cfg.train.batch_size, self.data)
        torch.manual_seed(cfg.train.seed)
        self.online = make_online(cfg.model).to(self.device)
        cuda = self.device.type == "cuda"
        if cuda and cfg.train.gpu_memory_fraction:
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            torch.cuda.set_per_process_memory_fraction(cfg.train.gpu_memory_fraction, index)
        self.channels_last = cuda and cfg.train.channels_last
        if self.channels_last:
            self.online.to(memory_format=torch.channels_last)
        native_bf16 = cuda and torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere and later
        self.bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and native_bf16)
        self.teacher = make_teacher(self.online.encoder)
        # compiled callables share parameters with the modules, which stay the ones saved and averaged
        self.online_fn = torch.compile(self.online) if cfg.train.compile else self.online
        self.teacher_fn = torch.compile(self.teacher) if cfg.train.compile else self.teacher
        self.optimizer = make_optimizer(cfg.optim, self.online)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.train.seed)
        self.steps_per_epoch = n // cfg.train.batch_size
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        self.warmup_steps = round(cfg.optim.warmup_epochs * self.steps_per_epoch)
        self.step = 0
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.baseline: dict[str, float] = {}
        self.stop_reason = ""
        self.final: dict[str, Any] = {}

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.model_dump(mode="json"),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "baseline": self.baseline,
            "stop_reason": self.stop_reason,
            "final": self.final,
            "online": self.online.state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["config"] != self.cfg.model_dump(mode="json"):
            raise ConfigError("checkpoint: it was written by a different trial config; remove it to start over")
        self.online.load_state_dict(state["online"])
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen.set_state(state["generator"].cpu())  # map_location may have moved it
        self.epoch, self.step = state["epoch"], state["step"]
        self.history, self.baseline, self.stop_reason = state["history"], state["baseline"], state["stop_reason"]
        self.final = state["final"]

    def save(self, path: Path) -> None:
        with atomic_write(path) as f:
            torch.save(self.state_dict(), f)

    def load(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
            raise ConfigError(f"checkpoint: cannot read {path}: {exc.__class__.__name__}") from None
        self.load_state_dict(state)

    # -- training ----------------------------------------------------------------------------
    def _set_lr(self) -> float:
        f = lr_factor(self.step, self.total_steps, self.warmup_steps, self.cfg.optim.schedule)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * f
        return self.optimizer.param_groups[0]["lr"]

    def views(self, images: Tensor, gen: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Two augmented, normalised views of a uint8 batch, drawn from `gen` (the trial's by default)."""
        cfg, d, gen = self.cfg, self.data, gen or self.gen
        return augment(images, cfg.augment, 0, d.mean, d.std, gen), augment(images, cfg.augment, 1, d.mean, d.std, gen)

    def train_step(self, images: Tensor, tau: float) -> Tensor:
        """One optimisation step; returns the logged terms as a detached tensor (no host sync)."""
        return self.step_on_views(*self.views(images), tau)

    def step_on_views(self, x1: Tensor, x2: Tensor, tau: float) -> Tensor:
        """The step's compute alone, on views made elsewhere (bench/pipeline.py times it apart)."""
        cfg = self.cfg
        if self.channels_last:
            x1, x2 = (x.contiguous(memory_format=torch.channels_last) for x in (x1, x2))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            z1, p1 = self.online_fn(x1)
            _, p2 = self.online_fn(x2)
            with torch.no_grad():
                t1, t2 = self.teacher_fn(x1), self.teacher_fn(x2)
        z1, p1, p2, t1, t2 = (v.float() for v in (z1, p1, p2, t1, t2))  # losses and their norms in fp32
        loss = objective(cfg, p1, p2, t1, t2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        ema_update(self.teacher, self.online.encoder, tau)
        terms = loss_terms(p1, p2, t1, t2)
        return torch.stack(
            [loss.detach(), terms["byol_loss"], terms["l_align"], terms["l_cross"], spread(z1), spread(p1)]
        )

    def train_epoch(self) -> tuple[dict[str, Any], str | None]:
        """One pass over the shuffled train split; returns the epoch's metrics and, when the loss
        stopped being finite, a message saying where."""
        start = time.perf_counter()
        n, b = len(self.data.train_x), self.cfg.train.batch_size
        perm = torch.randperm(n, generator=self.gen, device=self.device)
        sums = torch.zeros(len(_LOGGED), device=self.device)
        lr = tau = float("nan")
        for i in range(self.steps_per_epoch):
            lr = self._set_lr()
            tau = tau_at(self.step, self.total_steps, self.cfg.teacher.tau, self.cfg.teacher.schedule)
            sums += self.train_step(self.data.train_x[perm[i * b : (i + 1) * b]], tau)
            self.step += 1
            last = i == self.steps_per_epoch - 1
            if (last or (i + 1) % _FINITE_CHECK_STEPS == 0) and not bool(torch.isfinite(sums[0])):
                return {}, f"loss is {float(sums[0])} at epoch {self.epoch + 1}, step {i + 1}"
        means = (sums / self.steps_per_epoch).tolist()
        self.epoch += 1
        seconds = time.perf_counter() - start
        metrics = {"epoch": self.epoch, **dict(zip(_LOGGED, means)), "lr": lr, "tau": tau}
        metrics.update(epoch_seconds=seconds, images_per_s=self.steps_per_epoch * b / seconds)
        return metrics, None

    def collapse_stop(self, metrics: dict[str, Any]) -> str:
        """Why training should end now because the compared vectors collapsed, or ''."""
        rule = self.cfg.train.collapse_stop
        if rule is None or self.epoch < rule.after_epoch:
            return ""
        low = min(metrics["z_std"], metrics["p_std"])
        if low >= rule.threshold:
            return ""
        return f"collapse stop at epoch {self.epoch}: min(z_std, p_std) = {low:.3g} < {rule.threshold}"

    def diagnostics(self) -> dict[str, float]:
        """The paper's diagnostics on the same probe batch and views every time, drawn from their own
        generator, so measuring takes nothing from the training generator."""
        cfg, d = self.cfg, self.data
        gen = torch.Generator(device=self.device).manual_seed(cfg.train.seed + 2)
        n = min(cfg.diagnostics.batch_size, len(d.train_x))
        images = d.train_x[torch.randperm(len(d.train_x), generator=gen, device=self.device)[:n]]
        return diagnose(self.online, self.teacher, *self.views(images, gen), cfg.method.alpha, cfg.method.beta)

    def knn_check(self) -> float:
        train, test = plain_embeddings(self.online, self.data)
        return knn_of(train["feat"], test["feat"], self.data, self.cfg)


def saved_progress(path: Path) -> tuple[bool, int] | None:
    """(finished, epochs done) of a saved state, or None when it is missing or unreadable.

    Lets a resumer pick the furthest of several copies of one trial's state without building it.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - a partial or missing copy is simply not a candidate
        return None
    return bool(state["final"]), state["epoch"]


class OutOfMemory(RuntimeError):
    """The trial's device ran out of memory: says where, and what to change."""


def run_trial(
    cfg: TrialConfig,
    report: Reporter | None = None,
    checkpoint_dir: str | Path | None = None,
    data: ImageData | None = None,
) -> TrialResult:
    """Pretrain and evaluate one trial, resuming from `checkpoint_dir` when it holds a state.

    `report(metrics, state_path)` is called after every epoch and once at the end (with
    `final: True`; not `done`, which Ray Tune reserves); `state_path` is the state just saved, or None.
    Running out of device memory raises `OutOfMemory`, naming the device, backbone and batch size.
    """
    try:
        return _run_trial(cfg, report, checkpoint_dir, data)
    except torch.OutOfMemoryError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        raise OutOfMemory(
            f"out of {resolve_device(cfg.train.device)} memory (train.batch_size={cfg.train.batch_size}, "
            f"{cfg.model.backbone}): {first}; lower the batch size or give each trial more of the GPU "
            "(resources.gpu)"
        ) from None


def _run_trial(
    cfg: TrialConfig, report: Reporter | None, checkpoint_dir: str | Path | None, data: ImageData | None
) -> TrialResult:
    report = report or (lambda metrics, path: None)
    trial = Trial(cfg, data)
    state_path = Path(checkpoint_dir) / STATE_FILE if checkpoint_dir is not None else None
    if state_path is not None and state_path.is_file():
        trial.load(state_path)
    elif cfg.eval.random_init_baseline:
        accs, _ = probe(trial.online, trial.data, cfg)
        trial.baseline = {f"random_init_{k}": v for k, v in accs.items()}

    if trial.final:  # resumed after its end (e.g. the driver died before recording it): report it again
        report(trial.final, state_path)
        return TrialResult(trial.final["status"], trial.final, trial.history, trial.final["message"])

    while trial.epoch < cfg.train.epochs and not trial.stop_reason:
        metrics, failure = trial.train_epoch()
        if failure is not None:
            trial.final = {**trial.baseline, "status": "diverged", "message": failure, "final": True,
                           "epochs_done": trial.epoch}  # fmt: skip
            break
        if cfg.eval.knn_every and trial.epoch % cfg.eval.knn_every == 0 and trial.epoch < cfg.train.epochs:
            metrics["knn_acc"] = trial.knn_check()
        if cfg.diagnostics.every and trial.epoch % cfg.diagnostics.every == 0:
            metrics.update(trial.diagnostics())
        trial.history.append(metrics)
        trial.stop_reason = trial.collapse_stop(metrics)
        saved = None
        due = trial.epoch % cfg.train.checkpoint_every == 0 or trial.epoch == cfg.train.epochs or trial.stop_reason
        if state_path is not None and due:
            trial.save(state_path)
            saved = state_path
        report({**metrics, "final": False}, saved)

    if not trial.final:
        trial.final = {**trial.history[-1], **trial.baseline, **evaluate(trial.online, trial.data, cfg)}
        trial.final.update(status="stopped" if trial.stop_reason else "completed", message=trial.stop_reason,
                           final=True, epochs_done=trial.epoch)  # fmt: skip
    if state_path is not None:  # the end is saved too, so a resumed trial reports it and stops
        trial.save(state_path)
    report(trial.final, state_path)
    return TrialResult(trial.final["status"], trial.final, trial.history, trial.final["message"])
