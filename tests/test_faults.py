"""Faults inside one trial or one write: out of memory, a full disk, truncated checkpoints.
(Killed drivers and workers are in test_interrupt.py, errored trials in test_runner.py.)"""

import errno
import os
from pathlib import Path

import pytest
import torch

from study.engine import STATE_FILE, OutOfMemory, Trial, run_trial
from study.io import atomic_write
from tests.conftest import tiny_config


def test_out_of_memory_is_reported_as_such(monkeypatch):
    def oom(self, images, tau):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.5 GiB total)")

    monkeypatch.setattr(Trial, "train_step", oom)
    with pytest.raises(OutOfMemory) as err:
        run_trial(tiny_config(eval={"random_init_baseline": False}))
    msg = str(err.value)
    assert msg.startswith("out of cpu memory (train.batch_size=128, convnet): CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "lower the batch size" in msg and "\n" not in msg


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_text("previous")
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError) as err, atomic_write(target, "w") as f:
        f.write("new and longer")
    assert err.value.errno == errno.ENOSPC
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_an_atomic_write_gives_the_permissions_of_an_ordinary_one(tmp_path):
    """Not mkstemp's owner-only 0600: a study on shared storage stays readable by the group."""
    (tmp_path / "plain").write_text("x")
    with atomic_write(tmp_path / "atomic", "w") as f:
        f.write("x")
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_a_trial_whose_disk_fills_up_resumes_once_there_is_space(tmp_path, monkeypatch):
    cfg = tiny_config(train={"epochs": 3}, eval={"random_init_baseline": False})
    whole = run_trial(cfg)
    saves = []
    real_fsync = os.fsync

    def fill_after_two(fd):
        saves.append(fd)
        if len(saves) > 2:
            _disk_full()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fill_after_two)
    with pytest.raises(OSError):
        run_trial(cfg, checkpoint_dir=tmp_path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    state = torch.load(tmp_path / STATE_FILE, weights_only=False)
    assert state["epoch"] == 2  # the third save failed; the second is whole
    resumed = run_trial(cfg, checkpoint_dir=tmp_path)
    assert resumed.metrics["linear_acc"] == whole.metrics["linear_acc"] and resumed.metrics["loss"] == whole.metrics["loss"]


def test_run_cli_says_the_disk_is_full_and_how_to_resume(monkeypatch, capsys, tmp_path):
    import study.runner
    from study.run import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "studies" / "x" / "state.pt"))

    monkeypatch.setattr(study.runner, "run_study", full)
    spec = Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml"
    code = main([str(spec), "--storage", str(tmp_path / "studies")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: no space left on the device (") and "rerun the same command to resume" in err


def test_truncated_checkpoint_is_refused_with_its_path_not_a_crash_loop(tmp_path):
    cfg = tiny_config(train={"epochs": 1}, eval={"random_init_baseline": False})
    run_trial(cfg, checkpoint_dir=tmp_path)
    state = tmp_path / STATE_FILE
    state.write_bytes(state.read_bytes()[:500])
    from study.config import ConfigError

    with pytest.raises(ConfigError, match=f"checkpoint: cannot read {state}"):
        run_trial(cfg, checkpoint_dir=tmp_path)
