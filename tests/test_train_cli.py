import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_tree

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = "search_spaces/quickstart.yaml"
TINY = [
    "--set", "base.model.width=8", "--set", "base.model.depth=2", "--set", "base.model.proj_hidden=32",
    "--set", "base.model.proj_dim=16", "--set", "base.model.pred_hidden=32", "--set", "base.eval.metric_samples=64",
]  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "study.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_cli_runs_a_config_and_writes_the_result(tmp_path):
    out = tmp_path / "result.json"
    proc = _run(QUICKSTART, "--trial", "7", *TINY, "--set", "base.train.epochs=2", "--out", str(out),
                "--checkpoint-dir", str(tmp_path / "ckpt"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("trial: byol beta=1.0 tau=0.99 predictor=mlp on digits, 2 epochs")
    assert "epoch 1/2" in proc.stdout and "epoch 2/2" in proc.stdout
    result = json.loads(out.read_text())
    assert result["status"] == "completed" and len(result["history"]) == 2
    assert 0 < result["metrics"]["linear_acc"] <= 1
    assert (tmp_path / "ckpt" / "state.pt").is_file()


@pytest.mark.parametrize(
    "args,culprit",
    [
        (["--set", "base.teacher.tau=2"], "base.teacher.tau"),
        (["--set", "base.model.predictor=huge"], "base.model.predictor"),
        (["--set", "base.data.name=imagefolder", "--set", "base.data.root=/nonexistent/folder"], "/nonexistent/folder"),
        (["--trial", "8"], "--trial 8: search_spaces/quickstart.yaml has trials 0 to 7"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args, culprit, tmp_path):
    out = tmp_path / "result.json"
    proc = _run(QUICKSTART, *args, "--out", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0] and lines[0].startswith("error:")
    assert not out.exists()


def test_cli_yaml_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n   batch_size: 4\n")
    proc = _run(str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}: YAML syntax error at line 3: mapping values are not allowed here"


@pytest.mark.slow
def test_cli_trial_config_file_diverged_exits_1(tmp_path):
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(tiny_tree(optim={"name": "sgd", "lr": 1e30}, eval={"random_init_baseline": False})))
    proc = _run(str(config), "--set", "train.epochs=3")
    assert proc.returncode == 1 and "diverged: loss is" in proc.stderr
    assert proc.stdout.startswith("trial: raft beta=1.0 tau=0.996 predictor=mlp on digits, 3 epochs")
