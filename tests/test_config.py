import pytest

from study.config import ConfigError, TrialConfig, load_trial_config, trial_config_from_dict


def _error(tree: dict) -> str:
    with pytest.raises(ConfigError) as err:
        trial_config_from_dict(tree, "spec.yaml")
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "tree,field",
    [
        ({"teacher": {"tau": 1.5}}, "teacher.tau"),
        ({"teacher": {"tau": -0.1}}, "teacher.tau"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"batch_size": -4}}, "train.batch_size"),
        ({"method": {"name": "simclr"}}, "method.name"),
        ({"model": {"predictor": "deep"}}, "model.predictor"),
        ({"model": {"backbone": "vit"}}, "model.backbone"),
        ({"optim": {"name": "lamb"}}, "optim.name"),
        ({"data": {"name": "mnist"}}, "data.name"),
        ({"optim": {"lr": "fast"}}, "optim.lr"),
        ({"model": {"widht": 8}}, "model.widht"),
        ({"augment": {"crop_scale": [0.9, 0.2]}}, "augment.crop_scale"),
        ({"data": {"name": "imagefolder"}}, "data.root"),
        ({"data": {"n_train": 100}, "train": {"batch_size": 256}}, "train.batch_size"),
    ],
)
def test_bad_values_name_the_field(tree, field):
    msg = _error(tree)
    assert msg.startswith("spec.yaml:") and field in msg


def test_unknown_key_says_so():
    assert "unknown key" in _error({"teacher": {"decay": 0.9}})


def test_defaults_are_the_paper_heads():
    cfg = TrialConfig()
    assert (cfg.model.proj_hidden, cfg.model.proj_dim, cfg.teacher.tau, cfg.optim.lr) == (512, 256, 0.996, 3e-4)


def test_file_overrides_and_yaml_errors(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("method:\n  name: raft\n  beta: 0.5\n")
    cfg = load_trial_config(path, ["method.beta=-1", "teacher.tau=0.99", "model.predictor=linear"])
    assert (cfg.method.beta, cfg.teacher.tau, cfg.model.predictor) == (-1, 0.99, "linear")
    path.write_text("method:\n  name: raft\n   beta: [\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_trial_config(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_trial_config(tmp_path / "missing.yaml")
    ok = tmp_path / "ok.yaml"
    ok.write_text("{}")
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_trial_config(ok, ["oops"])
