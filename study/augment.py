"""Batched per-sample augmentations on whatever device the images live on.

Every operation takes a whole batch and draws one set of random parameters per image from an
explicit `torch.Generator`, so there is no per-image Python on the hot path and the same generator
state gives the same views. The pipeline is the BYOL/SimCLR CIFAR one: random resized crop, flip,
colour jitter (brightness, contrast, saturation, hue, in that fixed order) with probability,
grayscale, optional Gaussian blur and solarisation, then per-channel normalisation.
Images enter as uint8 [B, C, H, W] and leave as normalised float32 of the same shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from study.config import AugmentConfig

_LUMA = (0.299, 0.587, 0.114)
# RGB <-> YIQ: hue rotation is a rotation of the (I, Q) chroma plane.
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _rand(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=gen, device=gen.device)


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * _rand(gen, n)


def _gray(x: Tensor) -> Tensor:
    """Luma, [B, 1, H, W]."""
    w = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def to_unit(x: Tensor) -> Tensor:
    """uint8 images -> float in [0, 1]."""
    return x.float().div_(255.0)


def normalize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def crop_flip(
    x: Tensor, scale: tuple[float, float], ratio: tuple[float, float], flip_p: float, gen: torch.Generator
) -> Tensor:
    """Random resized crop (area fraction in `scale`, aspect ratio in `ratio`) and horizontal
    flip, resampled bilinearly back to the input size in one `grid_sample`."""
    b = x.shape[0]
    area = _uniform(gen, b, *scale)
    log_r = _uniform(gen, b, math.log(ratio[0]), math.log(ratio[1]))
    r = log_r.exp()
    w = (area * r).sqrt().clamp(max=1.0)
    h = (area / r).sqrt().clamp(max=1.0)
    cx = (2 * _rand(gen, b) - 1) * (1 - w)
    cy = (2 * _rand(gen, b) - 1) * (1 - h)
    sign = torch.where(_rand(gen, b) < flip_p, -1.0, 1.0)
    zero = torch.zeros_like(w)
    theta = torch.stack([torch.stack([w * sign, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(
    x: Tensor, p: float, brightness: float, contrast: float, saturation: float, hue: float, gen: torch.Generator
) -> Tensor:
    """With probability p per image: brightness, contrast, saturation and hue factors drawn
    uniformly as torchvision does; images not selected get identity factors."""
    b = x.shape[0]
    apply = (_rand(gen, b) < p).to(x.dtype)

    def factor(strength: float) -> Tensor:
        f = _uniform(gen, b, max(0.0, 1 - strength), 1 + strength)
        return (1 + apply * (f - 1)).view(b, 1, 1, 1)

    bf, cf, sf = factor(brightness), factor(contrast), factor(saturation)
    hf = apply * _uniform(gen, b, -hue, hue)
    x = (x * bf).clamp_(0, 1)
    m = _gray(x).mean(dim=(2, 3), keepdim=True)
    x = ((x - m) * cf + m).clamp_(0, 1)
    g = _gray(x)
    x = ((x - g) * sf + g).clamp_(0, 1)
    # Hue: rotate the chroma plane by 2*pi*hf in YIQ space, one 3x3 matrix per image.
    angle = 2 * math.pi * hf
    cos, sin = angle.cos(), angle.sin()
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    rot = torch.stack(
        [torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1), torch.stack([zero, sin, cos], 1)], 1
    )
    yiq = _RGB2YIQ.to(x.device, x.dtype)
    mat = torch.linalg.inv(yiq) @ rot @ yiq
    return torch.einsum("bij,bjhw->bihw", mat, x).clamp_(0, 1)


def grayscale(x: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """With probability p per image, replace RGB by its luma in all three channels."""
    apply = (_rand(gen, x.shape[0]) < p).view(-1, 1, 1, 1)
    return torch.where(apply, _gray(x).expand_as(x), x)


def gaussian_blur(x: Tensor, p: float, gen: torch.Generator, sigma: tuple[float, float] = (0.1, 2.0)) -> Tensor:
    """With probability p per image, a Gaussian blur of sigma ~ U(sigma), kernel about 10% of the
    image side (23 px at 224, as in BYOL), as two grouped separable convolutions."""
    b, c, h, w = x.shape
    apply = _rand(gen, b) < p
    s = torch.where(apply, _uniform(gen, b, *sigma), torch.full((b,), 1e-3, device=x.device))
    radius = max(1, round(0.05 * min(h, w)))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps.view(1, -1) ** 2) / (2 * s.view(-1, 1).to(x.dtype) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [b*c, k]
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kernel.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kernel.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def solarize(x: Tensor, p: float, gen: torch.Generator, threshold: float = 0.5) -> Tensor:
    """With probability p per image, invert the pixels at or above `threshold`."""
    apply = (_rand(gen, x.shape[0]) < p).view(-1, 1, 1, 1)
    return torch.where(apply & (x >= threshold), 1 - x, x)


def augment(
    images: Tensor, cfg: AugmentConfig, view: int, mean: Tensor, std: Tensor, gen: torch.Generator
) -> Tensor:
    """One augmented, normalised view (view 0 or 1: blur and solarise probabilities differ)."""
    x = crop_flip(to_unit(images), cfg.crop_scale, cfg.crop_ratio, cfg.flip_p, gen)
    x = color_jitter(x, cfg.jitter_p, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, gen)
    x = grayscale(x, cfg.grayscale_p, gen)
    if cfg.blur_p[view] > 0:
        x = gaussian_blur(x, cfg.blur_p[view], gen)
    if cfg.solarize_p[view] > 0:
        x = solarize(x, cfg.solarize_p[view], gen)
    return normalize(x, mean, std)


def plain(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """The evaluation view: no augmentation, only normalisation."""
    return normalize(to_unit(images), mean, std)
