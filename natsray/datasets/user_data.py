"""What the user's own formats (``arrays``, ``folder``) share: the check's answer
(:class:`DatasetInfo`), the image-size rule of the NATS network, and the
:class:`ImageDataset` built from their splits with the training split's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from natsray.datasets.image_dataset import ImageDataset, ImageSplit
from natsray.datasets.pixels import channel_stats
from natsray.errors import EvaluatorError

__all__ = ["SPLITS", "USER_DATASETS", "DatasetInfo", "check_image_size", "network_size", "user_dataset"]

USER_DATASETS: tuple[str, ...] = ("arrays", "folder")
"""The user's own data: ``arrays`` (one ``.npz`` file) and ``folder`` (an image-folder tree)."""
SPLITS = ("train", "valid", "test")
"""The splits of a user's dataset, in order (``test`` is optional)."""


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`check_dataset` found in the user's dataset, without decoding an image.

    Attributes:
        name: ``arrays`` or ``folder``.
        path: The ``.npz`` file or the folder root (None: a dataset plugin's data).
        num_classes: ``C``: labels are ``0..C-1``.
        channels: Channels of the stored images (1 or 3; the network always sees 3).
        image_size: Height = width the network sees (after resizing).
        sizes: Images per split, ``{"train": n, "valid": n, "test": n}`` (0: no test split).
        classes: Class names, index ``i`` for label ``i``.
    """

    name: str
    path: Path | None
    num_classes: int
    channels: int
    image_size: int
    sizes: dict[str, int]
    classes: tuple[str, ...]


def check_image_size(size: object, what: str) -> None:
    """Refuse an image size the NATS network cannot take.

    The network halves height and width twice (two residual reduction blocks), so both must
    be a multiple of 4.

    Raises:
        EvaluatorError: ``"{what}: ..."``, one line.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 4 or size % 4:
        raise EvaluatorError(
            f"{what}: must be a multiple of 4 (the NATS network halves the image twice), got {size!r}"
        )


def network_size(height: int, width: int, image_size: int | None, where: str) -> int:
    """The size the network sees: ``image_size``, or the images' own square size (a multiple of 4)."""
    if image_size is not None:
        check_image_size(image_size, "image_size")
        return image_size
    if height != width:
        raise EvaluatorError(
            f"{where}: images are {width}x{height}, not square: set image_size to resize them"
        )
    if height < 4 or height % 4:
        raise EvaluatorError(
            f"{where}: images are {width}x{height}; the NATS network needs a multiple of 4: set image_size"
        )
    return height


def user_dataset(
    name: str, splits: dict[str, ImageSplit], info: DatasetInfo, source: str, stats_of: np.ndarray
) -> ImageDataset:
    """The :class:`ImageDataset` of a user's decoded ``splits`` (no ``test``: an empty one).

    Normalised with the per-channel mean / std of ``stats_of`` (the training images); NATS's
    augmentation scaled to the image size (flip, crop padding ``image_size // 8``).
    """
    size = info.image_size
    empty = ImageSplit(torch.empty((0, 3, size, size), dtype=torch.uint8), torch.empty(0, dtype=torch.long))
    return ImageDataset(
        name=name,
        train=splits["train"],
        valid=splits["valid"],
        test=splits.get("test", empty),
        num_classes=info.num_classes,
        input_size=size,
        crop_padding=size // 8,
        flip=True,
        split_source=source,
        classes=info.classes,
        **channel_stats(stats_of),
    )
