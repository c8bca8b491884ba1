"""The accuracy benchmark's own logic: its configs are valid trial configs, and its summary counts
random init once per seed and compares the mean over seeds with the reference figures."""

from __future__ import annotations

from bench.cpu_methods import REFERENCE, RUNS, config_tree, summary_rows
from study.config import TrialConfig


def test_every_run_is_a_valid_trial_config_with_its_own_ema_decay():
    for label, (method, tau) in RUNS.items():
        cfg = TrialConfig.model_validate(config_tree("cifar.tar.gz", method, 8, seed=2, tau=tau))
        assert (cfg.teacher.tau, cfg.train.seed, cfg.train.epochs, cfg.data.n_train) == (tau, 2, 8, 10_000), label
    assert RUNS["BYOL"][1] == 0.99 and RUNS["RAFT beta=-1"][1] == 0.95


def test_summary_means_over_seeds_and_compares_with_the_reference():
    def run(label: str, seed: int, acc: float) -> tuple[str, int, dict, float]:
        metrics = {"linear_acc": acc, "knn_acc": acc - 0.1, "random_init_linear_acc": 0.45 + 0.02 * seed,
                   "random_init_knn_acc": 0.35}  # fmt: skip
        return label, seed, metrics, 400.0 + seed

    accs = {"alignment only": (0.40, 0.42), "BYOL": (0.534, 0.536), "RAFT beta=1": (0.53, 0.54),
            "RAFT beta=-1": (0.50, 0.50)}  # fmt: skip
    runs = [run(label, seed, accs[label][seed]) for seed in (0, 1) for label in RUNS]
    rows = {line.split("  ")[0].strip(): line.split() for line in summary_rows(runs)[1:]}
    # random init: one entry per seed (0.45, 0.47), not one per run
    assert rows["random init"][2:5] == ["0.460", "0.014", "0.450-0.470"]
    assert rows["BYOL"][1:4] == ["0.535", "0.001", "0.534-0.536"] and rows["BYOL"][-1] == "yes"
    assert rows["RAFT beta=-1"][2:] == ["0.500", "0.000", "0.500-0.500", "0.400", "400", "0.532", "no"]
    assert rows["alignment only"][-2:] == [f"{REFERENCE['alignment only']:.3f}", "no"]
