"""ResNet-18 BYOL pretraining throughput on CIFAR-10-sized data, one trial and several packed on one GPU.

Prints, side by side in one run: the epoch time and images/s of one trial in fp32 and in the
default CUDA settings (bf16 autocast, channels-last), optionally with torch.compile; then the
aggregate images/s of 1, 2, 4 and 8 trials running at once as separate processes, each capped at
its share of GPU memory (as fractional `resources.gpu` does), and its ratio to one trial.

    python bench/gpu_throughput.py [--device cuda] [--images 50000] [--packing 1,2,4,8] [--compile]

Runs on the CPU too (small `--images`), to check the script itself. Data: random uint8 images of
CIFAR's shape; the step does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import fake_cifar  # noqa: E402
from study.config import TrialConfig  # noqa: E402
from study.engine import Trial  # noqa: E402


def trial(device: str, images: int, **train: object) -> Trial:
    cfg = TrialConfig.model_validate({
        "model": {"backbone": "resnet18", "proj_hidden": 512, "proj_dim": 256, "pred_hidden": 512},
        "method": {"name": "byol"}, "train": {"device": device, "batch_size": 256, "epochs": 1, **train},
        "eval": {"random_init_baseline": False},
    })  # fmt: skip
    return Trial(cfg, fake_cifar(images, 1000))


def epoch_seconds(t: Trial) -> float:
    """One full epoch after a short warm-up (cuDNN autotuning, compilation)."""
    for i in range(3):
        t.train_step(t.data.train_x[i * 256 : (i + 1) * 256], 0.996)
    if t.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    metrics, failure = t.train_epoch()  # ends with a host sync (the epoch's means)
    assert failure is None, failure
    return time.perf_counter() - start


def _packed_worker(device: str, images: int, fraction: float, start_at: float, out: mp.Queue) -> None:
    try:
        t = trial(device, images, gpu_memory_fraction=fraction if device.startswith("cuda") else None)
        while time.time() < start_at:  # every process starts its timed epoch together
            time.sleep(0.01)
        out.put(len(t.data.train_x) // 256 * 256 / epoch_seconds(t))
    except Exception as exc:  # noqa: BLE001 - the parent prints it instead of waiting for a rate
        out.put(f"{exc.__class__.__name__}: {exc}")


def packed_throughput(device: str, images: int, k: int) -> float:
    """Aggregate images/s of k trial processes; raises with a worker's error instead of hanging."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 25 + 5 * k  # time enough for every process to build its trial
    procs = [ctx.Process(target=_packed_worker, args=(device, images, 1 / k, start_at, out)) for _ in range(k)]
    for p in procs:
        p.start()
    rates: list[float] = []
    deadline = time.time() + 600
    while len(rates) < k:
        try:
            got = out.get(timeout=5)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.time() > deadline:
                raise RuntimeError(f"{k} packed trials: a worker died (exit codes {dead}) or timed out") from None
            continue
        if isinstance(got, str):
            raise RuntimeError(f"{k} packed trials: {got}")
        rates.append(got)
    for p in procs:
        p.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--packing", default="1,2,4,8")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"ResNet-18 BYOL, batch 256, {args.images} images of 3x32x32 per epoch, on {name}")
    runs = {"fp32": {"precision": "fp32", "channels_last": False}, "bf16 + channels-last": {}}
    if args.compile:
        runs["bf16 + channels-last + compile"] = {"compile": True}
    base = None
    for label, train in runs.items():
        s = epoch_seconds(trial(args.device, args.images, **train))
        base = base or s
        print(f"  one trial, {label:32s} {s:7.2f} s/epoch  {args.images / s:9.0f} images/s  ({base / s:.2f}x fp32)")
    one = None
    for k in (int(v) for v in args.packing.split(",")):
        try:
            rate = packed_throughput(args.device, args.images, k)
        except RuntimeError as exc:
            print(f"  {k} packed trial(s): failed: {exc}")
            break
        one = one or rate / k
        print(f"  {k} packed trial(s): {rate:9.0f} images/s in all, {rate / k:8.0f} each, {rate / one:.2f}x one trial")


if __name__ == "__main__":
    main()
