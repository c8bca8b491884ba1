"""Data sets, each loaded once into uint8 tensors [N, 3, H, W] that then live on the trial's device.

- digits: scikit-learn's 8x8 digits, upsampled to 16x16 RGB; ships with scikit-learn, no download.
- cifar10 / cifar100: torchvision's data sets, with its real download path (`download`, `root`).
- imagefolder: `root/train/<class>/*` and `root/test/<class>/*` (or a .tar/.tar.gz holding that
  layout, extracted once into the cache folder). Decoded arrays are cached as .npz, keyed by the
  folder's file listing, so the JPEGs are decoded once per machine.
The cache folder is $RAFT_STUDY_CACHE, else ~/.cache/raft-study.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from study.config import ConfigError, DataConfig
from study.io import atomic_write

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class ImageData:
    """Both splits as uint8 tensors plus the train split's per-channel mean and std in [0, 1]."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: tuple[str, ...]
    mean: Tensor
    std: Tensor

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(
            self.train_x.to(device), self.train_y.to(device), self.test_x.to(device), self.test_y.to(device),
            self.classes, self.mean.to(device), self.std.to(device),
        )  # fmt: skip


def cache_dir() -> Path:
    return Path(os.environ.get("RAFT_STUDY_CACHE", Path.home() / ".cache" / "raft-study"))


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    unit = x.float().div(255)
    return unit.mean(dim=(0, 2, 3)), unit.std(dim=(0, 2, 3)).clamp_min(1e-3)


def _from_numpy(train_x, train_y, test_x, test_y, classes) -> ImageData:
    """uint8 NCHW arrays -> ImageData with channel statistics of the train split."""
    tx = torch.from_numpy(np.ascontiguousarray(train_x))
    return ImageData(
        tx,
        torch.as_tensor(np.asarray(train_y), dtype=torch.long),
        torch.from_numpy(np.ascontiguousarray(test_x)),
        torch.as_tensor(np.asarray(test_y), dtype=torch.long),
        tuple(classes),
        *channel_stats(tx),
    )


def load_digits_data() -> ImageData:
    """scikit-learn's digits: 1,797 images, a fixed stratified 80/20 split, 16x16 RGB."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0  # [N, 1, 8, 8] in [0, 1]
    images = torch.nn.functional.interpolate(images, size=16, mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).numpy()
    idx = np.arange(len(images))
    tr, te = train_test_split(idx, test_size=0.2, random_state=0, stratify=bunch.target)
    classes = [str(c) for c in bunch.target_names]
    return _from_numpy(images[tr], bunch.target[tr], images[te], bunch.target[te], classes)


def load_cifar(name: str, root: str | None, download: bool) -> ImageData:
    """CIFAR-10/100 through torchvision (its download path when `download` is set)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    root_path = Path(root) if root else cache_dir() / "torchvision"
    try:
        train = cls(str(root_path), train=True, download=download)
        test = cls(str(root_path), train=False, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted. ..."
        raise ConfigError(
            f"data.root: {name} not found or corrupted under {root_path} ({exc}); "
            "set data.download=true or point data.root at a local copy"
        ) from None
    nchw = lambda a: np.asarray(a).transpose(0, 3, 1, 2)  # noqa: E731
    return _from_numpy(nchw(train.data), train.targets, nchw(test.data), test.targets, train.classes)


def _extract_archive(archive: Path) -> Path:
    """Extract a tar(.gz) into the cache once (atomically, via a temporary folder) and return it."""
    stat = archive.stat()
    key = hashlib.sha1(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "extracted" / key
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ConfigError(f"data.root: cannot extract {archive}: {exc}") from None
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not target.is_dir():
                raise
    return _find_split_parent(target) or target


def _find_split_parent(folder: Path) -> Path | None:
    """The folder holding train/ and test/: `folder` itself or one level below."""
    for cand in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if (cand / "train").is_dir() and (cand / "test").is_dir():
            return cand
    return None


def _list_split(split_dir: Path, classes: list[str] | None) -> tuple[list[str], list[tuple[Path, int]]]:
    if not split_dir.is_dir():
        raise ConfigError(f"data.root: split folder {split_dir} is missing")
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not found:
        raise ConfigError(f"data.root: {split_dir} has no class folders")
    if classes is not None and found != classes:
        raise ConfigError(f"data.root: classes of {split_dir} ({found}) differ from the train split's ({classes})")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(found):
        images = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ConfigError(f"data.root: class folder {split_dir / name} has no images")
        files += [(p, label) for p in images]
    return found, files


def _decode(files: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    arrays, size = [], None
    for path, _ in files:
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ConfigError(f"data.root: cannot read image {path}: {exc.__class__.__name__}") from None
        if size is None:
            size = arr.shape
        elif arr.shape != size:
            raise ConfigError(f"data.root: image {path} is {arr.shape[1]}x{arr.shape[0]}, others are {size[1]}x{size[0]}")
        arrays.append(arr)
    return np.stack(arrays).transpose(0, 3, 1, 2), np.array([label for _, label in files], dtype=np.int64)


def load_imagefolder(root: str) -> ImageData:
    """An ImageFolder-layout folder or archive, decoded once and cached."""
    path = Path(root)
    if not path.exists():
        raise ConfigError(f"data.root: {root} does not exist")
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise ConfigError(f"data.root: {root} is a file but not a tar archive")
        path = _extract_archive(path)
    folder = _find_split_parent(path) or path
    classes, train_files = _list_split(folder / "train", None)
    _, test_files = _list_split(folder / "test", classes)
    listing = "\n".join(f"{p}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p, _ in train_files + test_files)
    key = hashlib.sha1(listing.encode()).hexdigest()[:16]
    cached = cache_dir() / "decoded" / f"{key}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as z:
                return _from_numpy(z["train_x"], z["train_y"], z["test_x"], z["test_y"], classes)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    train_x, train_y = _decode(train_files)
    test_x, test_y = _decode(test_files)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(cached) as f:
        np.savez(f, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
    return _from_numpy(train_x, train_y, test_x, test_y, classes)


def subset(data: ImageData, n_train: int | None, n_test: int | None, seed: int) -> ImageData:
    """Fixed-seed random subsets of each split (the channel statistics are recomputed)."""
    gen = torch.Generator().manual_seed(seed)

    def pick(x: Tensor, y: Tensor, n: int | None, split: str) -> tuple[Tensor, Tensor]:
        if n is None:
            return x, y
        if n > len(x):
            raise ConfigError(f"data.n_{split}={n} is larger than the {split} split ({len(x)} images)")
        idx = torch.randperm(len(x), generator=gen)[:n]
        return x[idx], y[idx]

    tx, ty = pick(data.train_x, data.train_y, n_train, "train")
    vx, vy = pick(data.test_x, data.test_y, n_test, "test")
    mean, std = channel_stats(tx)
    return replace(data, train_x=tx, train_y=ty, test_x=vx, test_y=vy, mean=mean, std=std)


def check_batch_fits(batch_size: int, data: ImageData) -> None:
    """A training batch must fit in the train split: one message wherever it is checked."""
    n = len(data.train_x)
    if batch_size > n:
        raise ConfigError(f"train.batch_size={batch_size} is larger than the train split ({n} images)")


@functools.lru_cache(maxsize=1)
def load_data(cfg: DataConfig) -> ImageData:
    """The configured data set on the CPU, subset as asked. The last one stays cached, so a Ray
    worker that runs trial after trial of a study loads it once (nothing writes into it)."""
    if cfg.name == "digits":
        data = load_digits_data()
    elif cfg.name in ("cifar10", "cifar100"):
        data = load_cifar(cfg.name, cfg.root, cfg.download)
    elif cfg.name == "imagefolder":
        data = load_imagefolder(cfg.root or "")
    else:
        raise ConfigError(f"data.name: unknown data set {cfg.name!r}")
    return subset(data, cfg.n_train, cfg.n_test, cfg.subset_seed)
