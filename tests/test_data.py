import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from study.config import ConfigError, DataConfig
from study.data import load_data, subset


def test_digits_embedded():
    data = load_data(DataConfig(name="digits"))
    assert data.train_x.shape == (1437, 3, 16, 16) and data.test_x.shape == (360, 3, 16, 16)
    assert data.train_x.dtype == torch.uint8 and len(data.classes) == 10
    assert set(data.train_y.tolist()) == set(range(10))
    assert 0 < float(data.mean[0]) < 1 and torch.allclose(data.mean[0], data.mean[1])


def test_subset_is_fixed_by_seed():
    a = load_data(DataConfig(name="digits", n_train=200, n_test=50, subset_seed=3))
    b = load_data(DataConfig(name="digits", n_train=200, n_test=50, subset_seed=3))
    c = load_data(DataConfig(name="digits", n_train=200, subset_seed=4))
    assert a.train_x.shape[0] == 200 and a.test_x.shape[0] == 50 and c.test_x.shape[0] == 360
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    with pytest.raises(ConfigError, match="data.n_train=5000"):
        subset(a, 5000, None, 0)


def _make_folder(root, classes=("cat", "dog"), per_class=3, size=8):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def test_imagefolder_folder_and_archive(tmp_path):
    folder = _make_folder(tmp_path / "imgs")
    data = load_data(DataConfig(name="imagefolder", root=str(folder)))
    assert data.train_x.shape == (6, 3, 8, 8) and data.classes == ("cat", "dog")
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    pixels = np.array(Image.open(folder / "train" / "dog" / "1.png"))
    assert torch.equal(data.train_x[4], torch.from_numpy(pixels).permute(2, 0, 1))
    archive = tmp_path / "imgs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="imgs")
    from_tar = load_data(DataConfig(name="imagefolder", root=str(archive)))
    assert torch.equal(from_tar.train_x, data.train_x) and torch.equal(from_tar.test_y, data.test_y)


def _no_dog_images(root):
    for p in (_make_folder(root) / "train" / "dog").iterdir():
        p.unlink()


def _corrupt_image(root):
    (_make_folder(root) / "train" / "cat" / "1.png").write_bytes(b"not a png")


def _no_test_split(root):
    shutil.rmtree(_make_folder(root) / "test")


@pytest.mark.parametrize(
    "damage,expected",
    [(lambda r: None, "does not exist"), (_no_dog_images, "has no images"), (_corrupt_image, "1.png"),
     (_no_test_split, "test is missing")],
    ids=["missing", "empty-class", "corrupt-image", "missing-split"],
)
def test_imagefolder_bad_input(tmp_path, damage, expected):
    root = tmp_path / "bad"
    damage(root)
    with pytest.raises(ConfigError) as err:
        load_data(DataConfig(name="imagefolder", root=str(root)))
    assert expected in str(err.value) and "\n" not in str(err.value)


def _fake_cifar_batches(folder, n=10):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "labels": list(range(n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)


def test_cifar_download_path_without_network(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kw):
        calls.append(url)
        _fake_cifar_batches(tmp_path / "root" / "cifar-10-batches-py")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_download)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    with pytest.raises(ConfigError, match="data.download=true"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path / "root")))
    data = load_data(DataConfig(name="cifar10", root=str(tmp_path / "root"), download=True))
    assert calls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert data.train_x.shape == (50, 3, 32, 32) and data.test_x.shape == (10, 3, 32, 32)
    assert data.classes[3] == "c3"
    # a local copy is read without downloading again
    assert load_data(DataConfig(name="cifar10", root=str(tmp_path / "root"))).train_x.shape[0] == 50 and len(calls) == 1
