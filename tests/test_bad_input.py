"""Bad input to `python -m study.run`: exit status 2, one line naming the culprit, nothing written.

Specs, data and storage, end to end through the command line (in this process: every refusal comes
before Ray starts, except the resources check, which needs a Ray node and runs as a subprocess)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from study.run import main
from tests.conftest import tiny_tree
from tests.test_data import _corrupt_image, _no_dog_images, _no_test_split

ROOT = Path(__file__).resolve().parents[1]


def _spec(tmp_path: Path, base: dict | None = None, **fields) -> Path:
    tree = {"name": "bad", "base": base or tiny_tree(), "space": {"method.beta": {"grid": [0.0, 1.0]}}, **fields}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _refused(capsys, tmp_path: Path, spec: Path, *args: str) -> str:
    storage = tmp_path / "studies"
    code = main([str(spec), "--storage", str(storage), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert not storage.exists(), "a refused study wrote to its storage"
    return err[0]


@pytest.mark.parametrize(
    "section,change,culprit",
    [
        ("model", {"backbone": "vgg"}, "base.model.backbone"),
        ("model", {"predictor": "deep"}, "base.model.predictor"),
        ("method", {"name": "simclr"}, "base.method.name"),
        ("data", {"name": "imagenet"}, "base.data.name"),
        ("optim", {"name": "lamb"}, "base.optim.name"),
        ("teacher", {"tau": -0.1}, "base.teacher.tau"),
        ("train", {"epochs": 0}, "base.train.epochs"),
        ("train", {"batch_size": -4}, "base.train.batch_size"),
        ("train", {"epohcs": 2}, "base.train.epohcs: unknown key"),
        ("train", {"epochs": "many"}, "base.train.epochs"),
        ("train", {"batch_size": 4096}, "train.batch_size=4096 is larger than the train split (1437 images)"),
    ],
)
def test_bad_base_config(capsys, tmp_path, section, change, culprit):
    assert culprit in _refused(capsys, tmp_path, _spec(tmp_path, tiny_tree(**{section: change})))


@pytest.mark.parametrize(
    "space,culprit",
    [
        ({"teacher.tau": {"grid": []}}, "grid is empty"),
        ({"teacher.tau": {"grid": [0.9, 1.2]}}, "teacher.tau"),
        ({"method.beta": {"uniform": [1.0, -1.0]}}, "low 1.0 > high -1.0"),
        ({"optim.lr": {"loguniform": [0.0, 0.1]}}, "loguniform range must be > 0"),
        ({"teacher.tau": {"log1m": [0.9, 1.0]}}, "log1m range must stay below 1"),
        ({"model.predictor": {"grid": ["linear", "quadratic"]}}, "model.predictor"),
    ],
)
def test_bad_space(capsys, tmp_path, space, culprit):
    search = {"kind": "random", "num_samples": 2} if any("grid" not in d for d in space.values()) else {"kind": "grid"}
    assert culprit in _refused(capsys, tmp_path, _spec(tmp_path, space=space, search=search))


def test_yaml_syntax_error_names_its_line(capsys, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: bad\nbase:\n  train: {epochs: 2\nseeds: [0]\n")
    assert "YAML syntax error at line" in _refused(capsys, tmp_path, spec)


@pytest.mark.parametrize(
    "damage,culprit",
    [(lambda r: None, "does not exist"), (lambda r: r.mkdir(), "split folder"), (_no_dog_images, "has no images"),
     (_corrupt_image, "cannot read image"), (_no_test_split, "test is missing")],
    ids=["missing", "empty", "empty-class", "corrupt-image", "missing-split"],
)  # fmt: skip
def test_bad_data_folder(capsys, tmp_path, damage, culprit):
    root = tmp_path / "images"
    damage(root)
    base = tiny_tree(data={"name": "imagefolder", "root": str(root)}, train={"batch_size": 2})
    line = _refused(capsys, tmp_path, _spec(tmp_path, base))
    assert culprit in line and str(root) in line


def test_unwritable_storage_and_bad_name(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main([str(_spec(tmp_path)), "--storage", str(blocker / "studies")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: --storage: cannot write to {blocker / 'studies'}") and "\n" not in err
    assert "name" in _refused(capsys, tmp_path, _spec(tmp_path), "--name", "a/b")


@pytest.mark.slow
def test_resources_no_node_can_hold(tmp_path):
    spec = _spec(tmp_path, resources={"cpu": 64, "gpu": 0})
    storage = tmp_path / "studies"
    proc = subprocess.run([sys.executable, "-m", "study.run", str(spec), "--storage", str(storage)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[-1].startswith("error: resources: no node has 64 CPU(s) and 0 GPU(s)"), proc.stderr
    assert not storage.exists()
