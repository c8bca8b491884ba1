"""The Optuna searcher alone (no Ray run): grid points first, repeats over seeds, how each kind
of ending is told to Optuna, and its state surviving a save and restore."""

import pytest

pytest.importorskip("ray")
import optuna  # noqa: E402

from study.optuna_search import SeededOptunaSearch  # noqa: E402
from study.spec import StudySpec  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402


def _searcher(num_samples=3) -> SeededOptunaSearch:
    spec = StudySpec.model_validate({
        "name": "o",
        "space": {"method.beta": {"grid": [-1.0, 1.0]}, "optim.lr": {"loguniform": [1e-4, 1e-2]},
                  "teacher.tau": {"log1m": [0.9, 0.999]}},
        "search": {"kind": "optuna", "num_samples": num_samples, "seed": 0}, "seeds": [0, 1],
    })  # fmt: skip
    return SeededOptunaSearch(spec)


def _states(s: SeededOptunaSearch) -> list:
    return [t.state for t in s.study.get_trials(deepcopy=False)]


def test_grid_first_repeated_over_seeds_and_each_ending_told(tmp_path):
    s = _searcher()
    a, b = s.suggest("a"), s.suggest("b")
    assert {k: v for k, v in a.items() if k != "train.seed"} == {k: v for k, v in b.items() if k != "train.seed"}
    assert (a["train.seed"], b["train.seed"]) == (0, 1)
    assert a["method.beta"] == -1.0 and a["optim.lr"] == pytest.approx(1e-3) and a["teacher.tau"] == pytest.approx(0.99)
    s.on_trial_complete("a", {"status": "completed", "linear_acc": 0.5})
    assert _states(s)[0] == optuna.trial.TrialState.RUNNING  # waits for its second seed
    s.on_trial_complete("b", {"status": "completed", "linear_acc": 0.7})
    assert s.study.trials[0].value == pytest.approx(0.6)

    c, d = s.suggest("c"), s.suggest("d")
    assert c["method.beta"] == 1.0
    s.on_trial_complete("c", {"final": False, "epoch": 2, "knn_acc": 0.3})  # stopped by ASHA: no final metric
    s.on_trial_complete("d", {"final": False, "epoch": 2, "knn_acc": 0.4})
    assert s.study.trials[1].state == optuna.trial.TrialState.PRUNED

    path = tmp_path / "searcher.pkl"
    s.save(str(path))
    restored = _searcher()
    restored.restore(str(path))
    e, f = restored.suggest("e"), restored.suggest("f")  # TPE's own proposal now
    restored.on_trial_complete("e", error=True)
    restored.on_trial_complete("f", {"status": "diverged", "message": "loss is nan"})
    assert [t.state for t in restored.study.trials] == [
        optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL]
    assert restored.suggest("g") == Searcher.FINISHED
    assert 1e-4 <= e["optim.lr"] <= 1e-2 and 0.9 <= e["teacher.tau"] <= 0.999
