"""The snapshot guard puts back the last whole Tune snapshot over one a SIGKILL cut short."""

import json

import pytest

pytest.importorskip("ray")
from study.snapshot import GOOD, backup, repair  # noqa: E402


def test_truncated_snapshot_is_replaced_by_the_last_whole_one(tmp_path):
    state = tmp_path / "experiment_state-2026-12-04_10-00-00.json"
    variant = tmp_path / "basic-variant-state-2026-12-04_10-00-00.json"
    whole = json.dumps({"trial_data": [1, 2, 3]})
    state.write_text(whole)
    variant.write_text("{}")
    backup(tmp_path)
    assert (tmp_path / GOOD / state.name).read_text() == whole
    assert not repair(tmp_path)  # nothing to repair while the snapshot reads back whole
    state.write_text(whole[:10])  # the driver died while Ray copied it
    backup(tmp_path)  # a truncated snapshot never replaces the good copy
    assert (tmp_path / GOOD / state.name).read_text() == whole
    assert repair(tmp_path) and state.read_text() == whole and variant.read_text() == "{}"
