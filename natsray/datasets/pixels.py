"""Arithmetic on ``uint8`` ``(n, c, h, w)`` image arrays in bounded chunks: resizing and
per-channel statistics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["channel_stats", "resized"]

_CHUNK = 1024  # images per chunk when resizing or summing (bounds the float copies)


def channel_stats(images: np.ndarray) -> dict[str, tuple[float, ...]]:
    """Per-channel mean and std (population) of ``uint8`` ``(n, c, h, w)`` images, in 0..1 units."""
    total = np.zeros(images.shape[1])
    squares = np.zeros(images.shape[1])
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std = np.where(std > 0, std, 1.0)  # a constant channel: centre it, do not divide by 0
    return {"mean": tuple(float(x) for x in mean), "std": tuple(float(x) for x in std)}


def resized(images: np.ndarray, size: int) -> np.ndarray:
    """``uint8`` ``(n, c, h, w)`` images resized (bilinear; antialiased when shrinking) to ``size``."""
    if images.shape[2] == images.shape[3] == size:
        return images
    shrink = size < max(images.shape[2], images.shape[3])
    out = np.empty((images.shape[0], images.shape[1], size, size), dtype=np.uint8)
    for start in range(0, len(images), _CHUNK):
        chunk = torch.from_numpy(images[start : start + _CHUNK]).float()
        chunk = F.interpolate(
            chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        )
        out[start : start + _CHUNK] = chunk.round().clamp(0, 255).to(torch.uint8).numpy()
    return out
