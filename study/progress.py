"""Progress of a running study, printed by a Tune callback: a line per finished trial, and
every few seconds the counts (done / running / pending), the best result so far and how many
trials collapsed."""

from __future__ import annotations

import time
from typing import Any

from ray import tune

from study.runner import trial_count
from study.spec import StudySpec, describe
from study.trainable import params_of


class Progress(tune.Callback):
    def __init__(self, spec: StudySpec, every_s: float = 15.0) -> None:
        self.metric, self.mode, self.every_s = spec.metric, spec.mode, every_s
        self.total = trial_count(spec)
        self.last_print = 0.0

    def _params(self, trial: Any) -> str:
        return describe(params_of(trial.config))

    def _summary(self, trials: list[Any]) -> str:
        done = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        running = sum(t.status == "RUNNING" for t in trials)
        total = max(self.total, len(trials))
        finals = [t.last_result for t in done if t.last_result and self.metric in t.last_result]
        collapsed = sum(bool(r.get("collapsed")) for r in finals)
        best = ""
        if finals:
            pick = max if self.mode == "max" else min
            top = pick(finals, key=lambda r: r[self.metric])
            best = f", best {self.metric} {top[self.metric]:.4f}"
        return f"{len(done)}/{total} done, {running} running, {total - len(done) - running} pending{best}, {collapsed} collapsed"

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        now = time.monotonic()
        if now - self.last_print >= self.every_s:
            self.last_print = now
            print(f"[{time.strftime('%H:%M:%S')}] {self._summary(trials)}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        r = trial.last_result or {}
        if r.get("final") is False:
            ending = f"stopped by ASHA at epoch {r.get('epoch')}"
        elif r.get("status") == "diverged":
            ending = f"diverged: {r.get('message')}"
        else:
            value = r.get(self.metric)
            ending = f"{r.get('status')} {self.metric}={value:.4f}" if isinstance(value, float) else str(r.get("status"))
            ending += " collapsed" if r.get("collapsed") else ""
        print(f"trial {trial.trial_id} ({self._params(trial)}): {ending}", flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"trial {trial.trial_id} ({self._params(trial)}): error, see {trial.local_path}", flush=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {self._summary(trials)}", flush=True)
