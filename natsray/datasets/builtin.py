"""The built-in datasets and their NATS-Bench splits and statistics: digits (bundled with
scikit-learn), CIFAR-10, CIFAR-100 and ImageNet16-120 (python pickles in ``data_dir``).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from natsray.datasets.image_dataset import ImageDataset, ImageSplit
from natsray.errors import EvaluatorError

__all__ = ["DATASETS", "SPLIT_SEED", "load_cifar10", "load_cifar100", "load_digits", "load_imagenet16"]

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "ImageNet16-120")
"""The built-in datasets, by the names a config gives them."""
SPLIT_SEED = 0
"""Seed of every split that is not read from a NATS split file."""

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_IMAGENET16_URL = "https://image-net.org/download-images (Downsampled ImageNet 16x16, as used by NATS-Bench)"
_IMAGENET16_CLASSES = 120
_DIGITS_SPLIT = (1000, 400)  # train, valid; the remaining 397 images are the test split

# Channel means / stds of NATS-Bench (xautodl get_datasets), in 0..1 units.
_CIFAR10_STATS = ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7))
_CIFAR100_STATS = ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4))
_IMAGENET16_STATS = ((122.68, 116.66, 104.01), (63.22, 61.26, 65.09))


def load_digits(size: int) -> ImageDataset:
    """scikit-learn's 8x8 digits upsampled to ``size`` (8, 16 or 32), split 1000 / 400 / 397."""
    if size not in (8, 16, 32):
        raise EvaluatorError(f"digits_size: must be 8, 16 or 32, got {size!r}")
    pixels, target = _digits_arrays()
    images = torch.as_tensor(pixels, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(target, dtype=torch.long)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    n_train, n_valid = _DIGITS_SPLIT
    full = ImageSplit(images, labels)
    train = full.subset(order[:n_train])
    mean = float(train.images.float().mean()) / 255.0
    std = float(train.images.float().std()) / 255.0
    return ImageDataset(
        name="digits",
        train=train,
        valid=full.subset(order[n_train : n_train + n_valid]),
        test=full.subset(order[n_train + n_valid :]),
        num_classes=10,
        input_size=size,
        mean=(mean, mean, mean),
        std=(std, std, std),
        crop_padding=size // 8,
        flip=False,
        split_source=f"seeded permutation (seed {SPLIT_SEED}): 1000 train / 400 valid / 397 test",
    )


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images (1797, 8, 8) in 0..16, labels (1797,))`` of scikit-learn's bundled digits.

    Read from the file ``sklearn.datasets.load_digits`` reads (``sklearn/datasets/data/digits.csv.gz``)
    without importing scikit-learn (seconds of start-up on a busy machine); ``load_digits`` otherwise.
    """
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as handle:
                data = np.loadtxt(handle, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def _find_dir(root: Path, subdir: str, marker: str, name: str, url: str) -> Path:
    """``root`` or ``root/subdir``, whichever holds ``marker``."""
    for candidate in (root, root / subdir):
        if (candidate / marker).is_file():
            return candidate
    raise EvaluatorError(
        f"{name}: {root} has no {subdir}/{marker} (expected the python-pickle {name} from {url})"
    )


def _read_pickle(path: Path, name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise EvaluatorError(f"{name}: missing file {path}")
    try:
        with path.open("rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
    except Exception as exc:
        raise EvaluatorError(f"{name}: {path} is not a readable pickle ({type(exc).__name__})") from None
    if not isinstance(entry, dict) or any(key not in entry for key in keys):
        raise EvaluatorError(f"{name}: {path} must be a pickled dict with keys {', '.join(keys)}")
    return entry


def _pickled_images(paths: list[Path], name: str, label_key: str, size: int) -> ImageSplit:
    """Concatenate pickles holding ``data`` (n x 3*size*size uint8) and ``label_key``."""
    images, labels = [], []
    for path in paths:
        entry = _read_pickle(path, name, ("data", label_key))
        data = np.asarray(entry["data"])
        target = np.asarray(entry[label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * size * size:
            raise EvaluatorError(
                f"{name}: {path} 'data' must be uint8 of shape (n, {3 * size * size}), "
                f"got {data.dtype} {data.shape}"
            )
        if target.shape != (data.shape[0],):
            raise EvaluatorError(f"{name}: {path} has {data.shape[0]} images but {target.size} labels")
        images.append(data.reshape(-1, 3, size, size))
        labels.append(target)
    return ImageSplit(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))


def _check_labels(split: ImageSplit, num_classes: int, name: str, where: Path) -> None:
    if len(split) and (int(split.labels.min()) < 0 or int(split.labels.max()) >= num_classes):
        raise EvaluatorError(f"{name}: labels in {where} must be in 0..{num_classes - 1}")


def _halves(n: int, directory: Path, filename: str, keys: tuple[str, str], name: str) -> tuple[Any, Any, str]:
    """Two disjoint index sets of ``range(n)``: NATS's split file if present, else a seeded 50/50."""
    path = directory / filename
    if not path.is_file():
        order = np.random.default_rng(SPLIT_SEED).permutation(n)
        return order[: n // 2], order[n // 2 :], f"seeded 50/50 permutation (seed {SPLIT_SEED})"
    try:
        content = json.loads(path.read_text())
        first, second = (np.asarray([int(i) for i in content[key][1]], dtype=np.int64) for key in keys)
    except Exception as exc:
        raise EvaluatorError(
            f"{name}: split file {path} must be NATS JSON with keys {keys[0]!r}, {keys[1]!r} "
            f"({type(exc).__name__})"
        ) from None
    both = np.concatenate([first, second])
    if len(both) and (both.min() < 0 or both.max() >= n or len(np.unique(both)) != len(both)):
        raise EvaluatorError(f"{name}: split file {path} must hold disjoint indices in 0..{n - 1}")
    return first, second, f"NATS split file {path}"


def _nats_dataset(
    name: str,
    splits: tuple[ImageSplit, ImageSplit, ImageSplit],
    num_classes: int,
    size: int,
    source: str,
    stats: tuple[tuple[float, ...], tuple[float, ...]],
) -> ImageDataset:
    """A NATS-Bench dataset from its ``(train, valid, test)`` splits of ``size`` x ``size`` images.

    NATS's augmentation (flip, crop padding ``size // 8``: 4 at 32px, 2 at 16px) and its channel
    ``stats`` (means, stds in 0..255 units).
    """
    mean, std = stats
    train, valid, test = splits
    return ImageDataset(
        name,
        train,
        valid,
        test,
        num_classes,
        input_size=size,
        mean=tuple(x / 255 for x in mean),
        std=tuple(x / 255 for x in std),
        crop_padding=size // 8,
        flip=True,
        split_source=source,
    )


def load_cifar10(root: Path) -> ImageDataset:
    """CIFAR-10 from ``root`` (or ``root/cifar-10-batches-py``) with NATS's ``cifar10-valid`` split."""
    name = "cifar10"
    directory = _find_dir(root, "cifar-10-batches-py", "data_batch_1", name, _CIFAR_URL)
    train_files = [directory / f"data_batch_{i}" for i in range(1, 6)]
    full = _pickled_images(train_files, name, "labels", 32)
    test = _pickled_images([directory / "test_batch"], name, "labels", 32)
    for split in (full, test):
        _check_labels(split, 10, name, directory)
    train_idx, valid_idx, source = _halves(len(full), directory, "cifar-split.txt", ("train", "valid"), name)
    splits = (full.subset(train_idx), full.subset(valid_idx), test)
    return _nats_dataset(name, splits, 10, 32, source, _CIFAR10_STATS)


def load_cifar100(root: Path) -> ImageDataset:
    """CIFAR-100 from ``root`` (or ``root/cifar-100-python``), the test set halved as NATS does."""
    name = "cifar100"
    directory = _find_dir(root, "cifar-100-python", "train", name, _CIFAR_URL)
    train = _pickled_images([directory / "train"], name, "fine_labels", 32)
    full_test = _pickled_images([directory / "test"], name, "fine_labels", 32)
    for split in (train, full_test):
        _check_labels(split, 100, name, directory)
    valid_idx, test_idx, source = _halves(
        len(full_test), directory, "cifar100-test-split.txt", ("xvalid", "xtest"), name
    )
    splits = (train, full_test.subset(valid_idx), full_test.subset(test_idx))
    return _nats_dataset(name, splits, 100, 32, source, _CIFAR100_STATS)


def _first_classes(split: ImageSplit) -> ImageSplit:
    """Keep labels 1..120 (ImageNet16 labels are 1-based) and shift them to 0..119, as xautodl does."""
    keep = (split.labels >= 1) & (split.labels <= _IMAGENET16_CLASSES)
    return ImageSplit(split.images[keep], split.labels[keep] - 1)


def load_imagenet16(root: Path) -> ImageDataset:
    """ImageNet16-120 from ``root`` (or ``root/ImageNet16``), the validation set halved as NATS does."""
    name = "ImageNet16-120"
    directory = _find_dir(root, "ImageNet16", "train_data_batch_1", name, _IMAGENET16_URL)
    train_files = [directory / f"train_data_batch_{i}" for i in range(1, 11)]
    parts = [_first_classes(_pickled_images([path], name, "labels", 16)) for path in train_files]
    train = ImageSplit(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
    full_valid = _first_classes(_pickled_images([directory / "val_data"], name, "labels", 16))
    valid_idx, test_idx, source = _halves(
        len(full_valid), directory, "imagenet-16-120-test-split.txt", ("xvalid", "xtest"), name
    )
    splits = (train, full_valid.subset(valid_idx), full_valid.subset(test_idx))
    return _nats_dataset(name, splits, _IMAGENET16_CLASSES, 16, source, _IMAGENET16_STATS)
