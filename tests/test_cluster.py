"""A study run through a separately started Ray cluster (`ray start --head`, then `--address`).

`ray stop` ends every Ray process on the machine, so this test sits in its own module: no other
module keeps a Ray instance open while it runs."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.test_runner import TINY_BASE

pytest.importorskip("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_study_on_a_running_ray_cluster(tmp_path):
    """`ray start --head` on loopback, then `study.run --address` joins it, as on a real cluster."""
    import yaml

    root = Path(__file__).resolve().parents[1]
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(root)}
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    subprocess.run([str(ray_bin), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                    "--include-dashboard=false", f"--temp-dir={temp}"], check=True, env=env, capture_output=True,
                   timeout=120)  # fmt: skip
    try:
        spec = tmp_path / "s.yaml"
        spec.write_text(yaml.safe_dump({"name": "cluster", "base": TINY_BASE, "space": {"method.beta": {"grid": [0.0, 1.0]}}}))
        proc = subprocess.run([sys.executable, "-m", "study.run", str(spec), "--storage", str(tmp_path / "studies"),
                               "--address", f"127.0.0.1:{port}"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "study cluster: 2 completed" in proc.stdout
        assert len(list((tmp_path / "studies" / "cluster").glob("*/result.json"))) == 2
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
