"""A small synthetic segmentation task (coloured shapes on textured backgrounds), generated offline.

The paper's SKIN (ISIC 2017) lesion data is not available offline; this task keeps its structure: one
foreground "lesion" (an ellipse, a rectangle or a triangle, sometimes two) on a smoothly varying, noisy
background, and a binary mask. Foreground and background colours are drawn independently per image, so colour
alone does not solve it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_shapes_dataset"]

SHAPES = ("ellipse", "rectangle", "triangle")


def _background(rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    base = rng.uniform(0.15, 0.85, size=(channels, 1, 1))
    slope = rng.uniform(-0.25, 0.25, size=(channels, 2, 1, 1))
    image = base + slope[:, 0] * (yy - 0.5) + slope[:, 1] * (xx - 0.5)
    coarse = rng.normal(0.0, 0.08, size=(channels, 4, 4))
    image = image + np.kron(coarse, np.ones((size // 4 + 1, size // 4 + 1)))[:, :size, :size]
    return image


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    cy, cx = rng.uniform(0.3, 0.7, size=2) * size
    ry, rx = rng.uniform(0.12, 0.28, size=2) * size
    if kind == "ellipse":
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    if kind == "rectangle":
        return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    # triangle: apex up, base down
    top, bottom = cy - ry, cy + ry
    half_width = rx * (yy - top) / max(2 * ry, 1e-6)
    return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half_width)


def make_shapes_dataset(
    n: int,
    *,
    size: int = 64,
    channels: int = 3,
    seed: int = 0,
    noise: float = 0.05,
    second_shape_probability: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (float32 (n, channels, size, size) in [0, 1]) and binary masks (int64 (n, size, size)).

    Paper: Taghanaki et al. 2019 (paper 001), Section 3 and Table 4 (the SKIN segmentation task);
    an offline synthetic stand-in for the unavailable ISIC 2017 data.

    Args:
        n: number of images.
        size: image side (a multiple of 4 suits the zoo's U-Net).
        channels: image channels.
        seed: the whole dataset is a function of the seed.
        noise: standard deviation of the per-pixel Gaussian noise.
        second_shape_probability: chance that an image holds a second foreground shape.
    """
    for name, value in (("n", n), ("size", size), ("channels", channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    if not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
        raise ValueError(f"noise must be a number in [0, 1], got {noise!r}")
    if not isinstance(second_shape_probability, (int, float)) or not 0 <= second_shape_probability <= 1:
        raise ValueError(f"second_shape_probability must be in [0, 1], got {second_shape_probability!r}")
    rng = np.random.default_rng(seed)
    images = np.empty((n, channels, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=np.int64)
    for i in range(n):
        image = _background(rng, channels, size)
        mask = _shape_mask(rng, size)
        if rng.uniform() < second_shape_probability:
            mask = mask | _shape_mask(rng, size)
        background_mean = image.mean(axis=(1, 2))
        # a foreground colour at least 0.25 away from the background's mean in some channel
        colour = rng.uniform(0.0, 1.0, size=channels)
        while np.abs(colour - background_mean).max() < 0.25:
            colour = rng.uniform(0.0, 1.0, size=channels)
        texture = rng.normal(0.0, 0.04, size=(channels, size, size))
        image = np.where(mask[None], colour[:, None, None] + texture, image)
        image = image + rng.normal(0.0, noise, size=image.shape)
        images[i] = np.clip(image, 0.0, 1.0)
        masks[i] = mask
    return images, masks
