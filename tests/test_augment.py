import torch

from study.augment import augment, color_jitter, crop_flip, gaussian_blur, grayscale, plain, solarize, to_unit
from study.config import AugmentConfig


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _images(n=16, size=16, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


MEAN, STD = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25])


def test_shapes_dtype_and_range():
    x = augment(_images(), AugmentConfig(), 1, MEAN, STD, _gen())
    assert x.shape == (16, 3, 16, 16) and x.dtype == torch.float32
    unit = x * 0.25 + 0.5  # undo the normalisation: every pixel stays in [0, 1]
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5


def test_determinism_and_per_sample_randomness():
    imgs = _images(1).expand(8, -1, -1, -1).contiguous()  # eight copies of one image
    a = augment(imgs, AugmentConfig(), 0, MEAN, STD, _gen(3))
    b = augment(imgs, AugmentConfig(), 0, MEAN, STD, _gen(3))
    assert torch.equal(a, b)
    # each copy drew its own crop, so no two views are the same
    flat = a.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(8) * 1e9).min() > 1e-3
    assert not torch.equal(a, augment(imgs, AugmentConfig(), 0, MEAN, STD, _gen(4)))


def test_full_crop_without_flip_is_identity_and_flip_mirrors():
    x = to_unit(_images(4))
    same = crop_flip(x, (1.0, 1.0), (1.0, 1.0), 0.0, _gen())
    assert torch.allclose(same, x, atol=1e-5)
    mirrored = crop_flip(x, (1.0, 1.0), (1.0, 1.0), 1.0, _gen())
    assert torch.allclose(mirrored, x.flip(-1), atol=1e-5)


def test_crop_zooms_in():
    # a left-to-right ramp: a small crop spans a narrower range of values than the whole image
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(64, 3, 32, 32).contiguous()
    out = crop_flip(ramp, (0.1, 0.1), (1.0, 1.0), 0.0, _gen())
    spans = out[:, 0, 0, -1] - out[:, 0, 0, 0]
    assert torch.allclose(spans, torch.full_like(spans, 0.1**0.5 * 31 / 32), atol=0.02)


def test_jitter_probability_zero_is_identity_and_one_changes_every_image():
    x = to_unit(_images(32))
    assert torch.allclose(color_jitter(x, 0.0, 0.4, 0.4, 0.2, 0.1, _gen()), x, atol=1e-5)
    changed = (color_jitter(x, 1.0, 0.4, 0.4, 0.2, 0.1, _gen()) - x).abs().flatten(1).amax(1)
    assert (changed > 1e-3).all()


def test_hue_rotation_keeps_gray_pixels():
    gray = torch.full((4, 3, 8, 8), 0.5)
    assert torch.allclose(color_jitter(gray, 1.0, 0.0, 0.0, 0.0, 0.5, _gen()), gray, atol=1e-5)


def test_grayscale_equalises_channels_per_selected_image():
    x = to_unit(_images(200))
    out = grayscale(x, 0.5, _gen())
    is_gray = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert 70 < int(is_gray.sum()) < 130
    assert torch.equal(out[~is_gray], x[~is_gray])


def test_solarize_inverts_bright_pixels():
    x = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)
    assert torch.allclose(solarize(x, 1.0, _gen()).flatten(), torch.tensor([0.2, 0.5, 0.1]))
    assert torch.equal(solarize(x, 0.0, _gen()), x)


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.0, _gen()), flat, atol=1e-5)
    noise = to_unit(_images(8, 32))
    assert gaussian_blur(noise, 1.0, _gen()).std() < 0.8 * noise.std()
    assert torch.allclose(gaussian_blur(noise, 0.0, _gen()), noise, atol=1e-5)


def test_plain_only_normalises():
    imgs = _images(2)
    assert torch.allclose(plain(imgs, MEAN, STD), (imgs.float() / 255 - 0.5) / 0.25)
