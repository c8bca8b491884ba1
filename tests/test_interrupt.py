"""Interrupting `python -m study.run` and running the same command again finishes the study:
every trial exactly once, no finished trial rerun, interrupted trials resumed from a checkpoint."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_tree

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_tree(train={"epochs": 8}, eval={"metric_samples": 64, "linear_max_iter": 30, "random_init_baseline": False})


OWN_KEYS = ("status", "epochs_done", "loss", "knn_acc", "linear_acc", "pred_std", "collapsed")


def _results(study: Path) -> dict[str, list[dict]]:
    """Every trial's reported results, from Tune's per-trial result.json files."""
    out = {}
    for path in study.glob("*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if lines:
            out[path.parent.name] = lines
    return out


def _start(spec: Path, storage: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "study.run", str(spec), "--storage", str(storage)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip


def _wait_for_one_done_one_mid(study: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        res = _results(study)
        done = [t for t, r in res.items() if r and r[-1].get("final")]
        # mid-training: past a checkpoint, before ASHA's first rung (epoch 4), so certainly still running
        mid = [t for t, r in res.items()
               if r and not r[-1].get("final") and r[-1].get("epoch", 0) in (2, 3) and any((study / t).glob("checkpoint_*"))]
        if done and mid:
            return
        time.sleep(0.2)
    raise AssertionError("no moment with one trial finished and one mid-training")


def _spec(tmp_path: Path, **fields) -> Path:
    spec = {"name": "cut", "base": TINY, "space": {"method.beta": {"grid": [-1.0, 0.0, 1.0]}}, "seeds": [0, 1],
            "max_concurrent": 2, **fields}  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def check_partial_report(study: Path, out: Path, expected: int) -> None:
    """The report of a running or interrupted study says how much is done and lists every trial that
    is not, with how far it got."""
    from study.report import write_report

    text = (write_report(str(study), out) / "report.md").read_text()
    done = int(text.split(" of ")[0].rsplit("\n", 1)[-1])
    assert done < expected and f"{done} of {expected} trials reached a final evaluation." in text
    gaps = text.split("## What is missing")[1]
    assert "Nothing: every trial completed." not in gaps
    status_lines = re.findall(r"\n- \S+ \(.*\): (unfinished|errored|diverged)", gaps)  # stopped ones count as done
    listed = len(status_lines) + sum(int(n) for n in re.findall(r"- (\d+) trial\(s\) not started", gaps))
    assert listed == expected - done, gaps
    assert re.search(r"unfinished, (trained \d+ of \d+ epochs so far|not started)", gaps), gaps


def _interrupt_and_finish(
    tmp_path: Path, spec: Path, sig: int, expected_trials: int, whole_machine: bool = False, report: bool = False
) -> dict[str, list[dict]]:
    storage = tmp_path / "studies"
    study = storage / "cut"
    proc = _start(spec, storage)
    _wait_for_one_done_one_mid(study, proc)
    before = _results(study)
    finished = {t: r for t, r in before.items() if r[-1].get("final")}
    if whole_machine:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local Ray at once: as if the machine died
    else:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "resume with: python -m study.run" in out, out
    if report:
        check_partial_report(study, tmp_path / "reports", expected_trials)
    rerun = _start(spec, storage)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    after = _results(study)
    assert len(after) == expected_trials, sorted(after)
    for trial, results in after.items():
        # A trial that ended in the instant between its last report and Tune's snapshot is resumed
        # from its final state and re-reports the same result without training or evaluating again.
        finals = {json.dumps({k: r.get(k) for k in OWN_KEYS}) for r in results if r.get("final")}
        assert len(finals) <= 1, f"{trial} has {len(finals)} different final results"
        epochs = [r["epoch"] for r in results if not r.get("final")]
        assert epochs == sorted(set(epochs)), f"{trial} trained an epoch twice: {epochs}"
    for trial, results in finished.items():
        assert [r for r in after[trial] if not r.get("final")] == [r for r in results if not r.get("final")], (
            f"finished trial {trial} was trained again")
    # resumed: reported epochs after the rerun (ASHA may then stop it at a rung, so no final is needed)
    resumed = [t for t, r in before.items() if not r[-1].get("final") and len(after[t]) > len(r)]
    assert resumed, "no interrupted trial was resumed"
    return after


@pytest.mark.slow
def test_sigint_then_rerun_completes(tmp_path):
    after = _interrupt_and_finish(tmp_path, _spec(tmp_path), signal.SIGINT, 6)
    assert all(r[-1]["status"] == "completed" and r[-1]["epochs_done"] == 8 for r in after.values())


@pytest.mark.slow
def test_sigkill_of_the_driver_then_rerun_completes(tmp_path):
    after = _interrupt_and_finish(tmp_path, _spec(tmp_path), signal.SIGKILL, 6, report=True)
    assert all(r[-1]["status"] == "completed" for r in after.values())


@pytest.mark.slow
def test_machine_death_during_optuna_asha_then_rerun_completes(tmp_path):
    base = tiny_tree(train={"epochs": 8}, eval={"metric_samples": 64, "linear_max_iter": 30,
                                                "random_init_baseline": False, "knn_every": 1})
    spec = _spec(tmp_path, base=base, space={"method.beta": {"uniform": [-1.0, 1.0]}},
                 search={"kind": "optuna", "num_samples": 6, "seed": 0},
                 scheduler={"kind": "asha", "grace_period": 4, "reduction_factor": 2}, seeds=[0])  # fmt: skip
    after = _interrupt_and_finish(tmp_path, spec, signal.SIGKILL, 6, whole_machine=True)
    ended = [r[-1] for r in after.values()]
    assert all(r.get("status") == "completed" or r.get("final") is False for r in ended)


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is `pid`."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append((int(stat.parent.name), cmdline))
    return out


@pytest.mark.slow
def test_a_killed_worker_resumes_its_trial_from_its_last_checkpoint(tmp_path):
    from ray.tune import ExperimentAnalysis

    storage = tmp_path / "studies"
    study = storage / "cut"
    proc = _start(_spec(tmp_path), storage)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # two trials training, one of them past its first checkpoint
        assert proc.poll() is None, proc.stdout.read()
        res = _results(study)
        mid = [t for t, r in res.items() if not r[-1].get("final") and r[-1].get("epoch", 0) >= 2]
        workers = [pid for raylet, _ in _children(proc.pid) for pid, cmd in _children(raylet)
                   if cmd.startswith("ray::ImplicitFunc")]  # fmt: skip
        if mid and len(workers) == 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail("no moment with both workers training and a trial past its first checkpoint")
    os.kill(workers[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    after = _results(study)
    assert len(after) == 6 and all(r[-1]["status"] == "completed" and r[-1]["epochs_done"] == 8 for r in after.values())
    for trial, results in after.items():
        epochs = [r["epoch"] for r in results if not r.get("final")]
        assert epochs == sorted(set(epochs)), f"{trial} trained an epoch twice: {epochs}"
    recovered = [t for t in ExperimentAnalysis(str(study)).trials if t.run_metadata.num_failures]
    assert len(recovered) >= 1, "Tune saw no worker die"


@pytest.mark.slow
def test_repeated_driver_kills_lose_nothing_and_leave_optuna_clean(tmp_path):
    """Three rounds of SIGKILL to the driver and its Ray at random moments, then a rerun to the end."""
    from study.results import optuna_study

    spec = _spec(tmp_path, space={"method.beta": {"uniform": [-1.0, 1.0]}}, seeds=[0],
                 search={"kind": "optuna", "num_samples": 6, "seed": 0})  # fmt: skip
    storage = tmp_path / "studies"
    study = storage / "cut"
    rng = random.Random(0)
    finished: dict[str, list[dict]] = {}
    for round_ in range(3):
        proc = _start(spec, storage)
        if round_ == 0:  # during start-up, before or as the first trials start
            time.sleep(rng.uniform(3.0, 10.0))
        else:  # mid-training: once this round has reported a few epochs, plus a random moment
            seen = sum(len(r) for r in _results(study).values())
            deadline = time.monotonic() + 240
            while sum(len(r) for r in _results(study).values()) < seen + 3 and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.2)
            time.sleep(rng.uniform(0.0, 3.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        res = _results(study)
        for trial, results in finished.items():
            # unchanged (a trial that ended just before a kill may re-report the same final result)
            assert res[trial][: len(results)] == results, f"finished trial {trial} changed after a kill"
        finished.update({t: r for t, r in res.items() if r[-1].get("final")})
    rerun = _start(spec, storage)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    after = _results(study)
    assert len(after) == 6, sorted(after)
    assert all(after[t][: len(r)] == r for t, r in finished.items())
    for trial, results in after.items():
        epochs = [r["epoch"] for r in results if not r.get("final")]
        assert epochs == sorted(set(epochs)), f"{trial} trained an epoch twice: {epochs}"
    optuna = optuna_study(str(study))
    states = [t.state.name for t in optuna.trials]
    assert states == ["COMPLETE"] * 6, states  # no duplicate, no stale RUNNING trial
    told = sorted(round(t.value, 9) for t in optuna.trials)
    assert told == sorted(round(r[-1]["linear_acc"], 9) for r in after.values())
