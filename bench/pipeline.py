"""Where a trial's time goes, measured side by side in one run, on the CPU or a GPU:

1. pipeline efficiency: training steps per second with the batched on-device augmentation
   (study/augment.py) against the same model and step on views made beforehand (compute alone);
2. against the peers' pipeline: the same step fed by a torchvision-transforms DataLoader over PIL
   images (RandomResizedCrop, flip, ColorJitter, Grayscale, ToTensor, Normalize), as solo-learn and
   lightly do for CIFAR, on the same cores;
3. evaluation cost: the final evaluation (linear probe + kNN + collapse metrics, on features
   computed once) against one pretraining epoch;
4. peak memory of the process (RSS; on CUDA also max_memory_allocated).

    python bench/pipeline.py [--device cpu|cuda] [--backbone convnet|resnet18] [--steps 20]
                             [--batch 256] [--workers 2] [--archive ../shared/data/cifar10-jpeg.tar.gz]

Uses the shared CIFAR-10 copy when it is there, else random 32x32 images (same shapes and cost).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.config import TrialConfig  # noqa: E402
from study.data import ImageData  # noqa: E402
from study.engine import Trial, evaluate  # noqa: E402


def fake_cifar(n_train: int, n_test: int) -> ImageData:
    """Random uint8 images of CIFAR-10's shape: a step's cost does not depend on pixel values."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train + n_test, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    return ImageData(x[:n_train], y[:n_train], x[n_train:], y[n_train:], tuple(map(str, range(10))), mean, std)


def image_data(archive: Path, n_train: int, n_test: int) -> ImageData:
    """CIFAR-10 from the shared copy, or random images of its shape when the copy is absent."""
    if archive.is_file():
        from study.config import DataConfig
        from study.data import load_data

        return load_data(DataConfig(name="imagefolder", root=str(archive), n_train=n_train, n_test=n_test))
    return fake_cifar(n_train, n_test)


def timed_steps(trial: Trial, batches: list, make_views, sync) -> float:
    """Steps per second over `batches` (the first two are a warm-up)."""
    for b in batches[:2]:
        trial.step_on_views(*make_views(b), 0.99)
    sync()
    start = time.perf_counter()
    for b in batches[2:]:
        trial.step_on_views(*make_views(b), 0.99)
    sync()
    return (len(batches) - 2) / (time.perf_counter() - start)


def peer_loader(data: ImageData, batch: int, workers: int):
    """A torchvision-transforms DataLoader over PIL images, two views per image, as the peers do."""
    from PIL import Image
    from torchvision import transforms as T

    mean, std = data.mean.tolist(), data.std.tolist()
    aug = T.Compose([T.RandomResizedCrop(32, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
                     T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), T.RandomGrayscale(0.2),
                     T.ToTensor(), T.Normalize(mean, std)])  # fmt: skip
    images = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in data.train_x.cpu()]

    class Pairs(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, i: int):
            return aug(images[i]), aug(images[i])

    return torch.utils.data.DataLoader(Pairs(), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                       persistent_workers=workers > 0)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default=None, help="default: resnet18 on CUDA, convnet on the CPU")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the peers' pipeline")
    parser.add_argument("--archive", type=Path, default=ROOT.parent / "shared/data/cifar10-jpeg.tar.gz")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    backbone = args.backbone or ("resnet18" if cuda else "convnet")
    n_train = args.batch * (args.steps + 2)
    data = image_data(args.archive, n_train, 2000)
    cfg = TrialConfig.model_validate({
        "model": {"backbone": backbone}, "train": {"device": args.device, "batch_size": args.batch, "epochs": 1},
        "eval": {"random_init_baseline": False, "metric_samples": 1024},
    })  # fmt: skip
    trial = Trial(cfg, data)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    x = trial.data.train_x
    batches = [x[i * args.batch : (i + 1) * args.batch] for i in range(args.steps + 2)]
    source = "shared CIFAR-10" if args.archive.is_file() else "random 32x32 images"
    print(f"{backbone} on {trial.device}, batch {args.batch}, {args.steps} timed steps, {source}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip

    ours = timed_steps(trial, batches, trial.views, sync)
    ready = [trial.views(b) for b in batches]
    compute = timed_steps(trial, list(range(len(batches))), lambda i: ready[i], sync)
    print(f"1. steps/s with on-device augmentation {ours:.2f}, compute alone {compute:.2f}: "
          f"pipeline efficiency {ours / compute:.3f} ({ours * args.batch:.0f} images/s)")  # fmt: skip

    loader = iter(peer_loader(data, args.batch, args.workers))
    peer_batches = list(range(len(batches)))
    to_dev = lambda _: tuple(v.to(trial.device, non_blocking=True) for v in next(loader))  # noqa: E731
    peers = timed_steps(trial, peer_batches, to_dev, sync)
    print(f"2. steps/s fed by a torchvision DataLoader ({args.workers} workers, PIL transforms) {peers:.2f}: "
          f"ours is {ours / peers:.2f}x as fast")  # fmt: skip

    epoch_s = len(trial.data.train_x) // args.batch / ours
    start = time.perf_counter()
    evaluate(trial.online, trial.data, cfg)
    sync()
    eval_s = time.perf_counter() - start
    print(f"3. final evaluation (probe + kNN + collapse metrics, {len(data.train_x)} train / {len(data.test_x)} "
          f"test images) {eval_s:.1f} s against one epoch of the same images {epoch_s:.1f} s: ratio {eval_s / epoch_s:.2f}")  # fmt: skip

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = f", GPU max_memory_allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if cuda else ""
    print(f"4. peak memory: RSS {rss:.0f} MiB (the whole benchmark process){gpu}")


if __name__ == "__main__":
    main()
