import subprocess
import sys
from pathlib import Path

import pytest

from study.config import ConfigError
from study.spec import StudySpec, describe, expand, load_spec, trial_config


def _spec_file(tmp_path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


BASE = """
name: demo
base:
  train: {epochs: 2, batch_size: 64}
space:
  teacher.tau: {grid: [0.9, 0.99]}
  method: {grid: [{name: raft, beta: 0.0}, {name: raft, beta: 1.0}, {name: byol}]}
seeds: [0, 1]
"""


def test_grid_expansion_with_seeds(tmp_path):
    spec = load_spec(_spec_file(tmp_path, BASE))
    trials = expand(spec)
    assert len(trials) == 2 * 3 * 2
    assert trials[0] == {"teacher.tau": 0.9, "method": {"name": "raft", "beta": 0.0}, "train.seed": 0}
    assert trials[1]["train.seed"] == 1
    cfg = trial_config(spec, trials[-1])
    assert (cfg.teacher.tau, cfg.method.name, cfg.train.seed, cfg.train.epochs) == (0.99, "byol", 1, 2)
    assert describe(trials[0]) == "tau=0.9 method={name=raft,beta=0} seed=0"


def test_random_expansion_is_seeded_and_in_range(tmp_path):
    text = BASE.replace("seeds: [0, 1]", "seeds: [0]\nsearch: {kind: random, num_samples: 5, seed: 7}")
    text = text.replace("teacher.tau: {grid: [0.9, 0.99]}", "teacher.tau: {log1m: [0.9, 0.999]}\n  optim.lr: {loguniform: [1.0e-4, 1.0e-2]}")
    a, b = expand(load_spec(_spec_file(tmp_path, text))), expand(load_spec(_spec_file(tmp_path, text)))
    assert a == b and len(a) == 3 * 5
    assert all(0.9 <= t["teacher.tau"] <= 0.999 and 1e-4 <= t["optim.lr"] <= 1e-2 for t in a)


def test_log1m_spreads_decays_evenly_in_log_of_one_minus_tau():
    spec = StudySpec.model_validate({"name": "x", "space": {"teacher.tau": {"log1m": [0.9, 0.999]}},
                                     "search": {"kind": "random", "num_samples": 3000}})  # fmt: skip
    taus = [t["teacher.tau"] for t in expand(spec)]
    share_above_099 = sum(t > 0.99 for t in taus) / len(taus)
    assert share_above_099 == pytest.approx(0.5, abs=0.04)


def test_overrides_and_name(tmp_path):
    spec = load_spec(_spec_file(tmp_path, BASE), ["base.train.epochs=1", "seeds=[3]", "space.teacher.tau.grid=[0.5]"],
                     name="other")  # fmt: skip
    assert spec.name == "other" and spec.base.train.epochs == 1 and spec.seeds == [3]
    assert spec.space["teacher.tau"].grid == [0.5]


@pytest.mark.parametrize(
    "change,culprit",
    [
        (("name: demo", "name: a/b"), "name"),
        (("seeds: [0, 1]", "seeds: []"), "seeds"),
        (("seeds: [0, 1]", "seeds: [1, 1]"), "seeds"),
        (("seeds: [0, 1]", "seeds: [0]\nsearhc: {kind: grid}"), "searhc: unknown key"),
        (("seeds: [0, 1]", "seeds: [0]\nsearch: {kind: bayes}"), "search.kind"),
        (("seeds: [0, 1]", "seeds: [0]\nsearch: {kind: random, num_samples: 0}"), "search.num_samples"),
        (("seeds: [0, 1]", "seeds: [0]\nscheduler: {kind: hyperband}"), "scheduler.kind"),
        (("seeds: [0, 1]", "seeds: [0]\nscheduler: {kind: asha}"), "set base.eval.knn_every: 1"),
        (("seeds: [0, 1]", "seeds: [0]\nresources: {cpu: 0}"), "resources.cpu"),
        (("seeds: [0, 1]", "seeds: [0]\nmode: up"), "mode"),
        (("seeds: [0, 1]", "seeds: [0]\nmax_concurrent: 0"), "max_concurrent"),
        (("grid: [0.9, 0.99]", "grid: []"), "grid is empty"),
        (("grid: [0.9, 0.99]", "grid: [0.9, 1.5]"), "space.teacher.tau=1.5: teacher.tau"),
        (("{grid: [0.9, 0.99]}", "{uniform: [0.99, 0.9]}"), "low 0.99 > high 0.9"),
        (("teacher.tau: {grid: [0.9, 0.99]}", "optim.lr: {loguniform: [0, 0.1]}"), "loguniform range must be > 0"),
        (("teacher.tau: {grid: [0.9, 0.99]}", "teacher.tau: {uniform: [0.9, 0.99]}"), "needs search.kind random"),
        (("teacher.tau: {grid: [0.9, 0.99]}", "teacher.tua: {grid: [0.9]}"), "teacher.tua: unknown key"),
        (("teacher.tau: {grid: [0.9, 0.99]}", "teacher.tau: {grid: [0.9], choice: [1]}"), "exactly one"),
        (("base:\n  train: {epochs: 2, batch_size: 64}", "base:\n  train: {epochs: 0}"), "base.train.epochs"),
        (("base:\n  train: {epochs: 2, batch_size: 64}", "base:\n  optim: {name: lamb}"), "base.optim.name"),
    ],
)
def test_bad_specs_name_the_field(tmp_path, change, culprit):
    text = BASE.replace(*change)
    assert text != BASE
    with pytest.raises(ConfigError) as err:
        load_spec(_spec_file(tmp_path, text))
    msg = str(err.value)
    assert "\n" not in msg and culprit in msg and msg.startswith(str(tmp_path))


def test_yaml_error_has_its_line(tmp_path):
    with pytest.raises(ConfigError, match="YAML syntax error at line 3: mapping values are not allowed here"):
        load_spec(_spec_file(tmp_path, "name: x\nbase: 1\n  seeds: 2\n"))


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("search_spaces/*.yaml")), ids=lambda p: p.name)
def test_shipped_search_spaces_dry_run(path):
    """Every shipped space validates, and --dry-run lists its trials and cost without running."""
    proc = subprocess.run([sys.executable, "-m", "study.run", str(path), "--dry-run"], capture_output=True, text=True,
                          cwd=path.parents[1], timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    spec = load_spec(path)
    assert proc.stdout.startswith(f"study {spec.name}: ") and "cost: at most" in proc.stdout
    header = path.read_text().splitlines()[0]
    assert header.startswith("# ")


@pytest.mark.parametrize(
    "args,culprit",
    [
        (["--set", "base.teacher.tau=1.5"], "base.teacher.tau"),
        (["--set", "search.kind=annealing"], "search.kind"),
        (["--name", "../escape"], "name"),
        (["--storage", "/proc/no-such-dir/studies"], "--storage: cannot write to /proc/no-such-dir/studies"),
    ],
)
def test_run_cli_refuses_bad_input_with_one_line_and_exit_2(tmp_path, args, culprit):
    root = Path(__file__).resolve().parents[1]
    storage = [] if "--storage" in args else ["--storage", str(tmp_path / "studies")]
    proc = subprocess.run([sys.executable, "-m", "study.run", "search_spaces/quickstart.yaml", *args, *storage],
                          capture_output=True, text=True, cwd=root, timeout=120)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0], proc.stderr
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").iterdir())
