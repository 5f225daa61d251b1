"""Image classification datasets as in-memory tensors: digits, CIFAR-10/100, ImageNet16-120.

:func:`load_dataset` reads a dataset once (an evaluator does it in ``setup``) into an
:class:`ImageDataset`: ``uint8`` images of shape ``(n, 3, size, size)`` with ``int64`` labels,
split into ``train`` / ``valid`` / ``test``. Batches are normalised (and, for training,
augmented) on the fly by :meth:`ImageDataset.batches`, so a dataset costs its ``uint8`` size.

Splits follow NATS-Bench:

- ``cifar10``: NATS's ``cifar10-valid``: ``train`` / ``valid`` are two 25k halves of the
  50k training images, ``test`` is the 10k test set.
- ``cifar100`` and ``ImageNet16-120``: ``train`` is the whole training set, ``valid`` /
  ``test`` are NATS's ``x-valid`` / ``x-test`` halves of the original test (validation) set.
- ``digits``: sklearn's bundled 8x8 handwritten digits (1,797 images, no download), upsampled
  to ``digits_size`` and replicated to 3 channels; a fixed 1,000 / 400 / 397 split.

The halves are NATS's exact ones when the split file NATS used (``cifar-split.txt``,
``cifar100-test-split.txt``, ``imagenet-16-120-test-split.txt`` from AutoDL-Projects
``configs/nas-benchmark/``) sits in the dataset directory; otherwise they are a random
permutation seeded with :data:`SPLIT_SEED` (fixed, documented, but not NATS's own split).
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from natsray.evaluators.base import EvaluatorError

__all__ = ["DATASETS", "SPLIT_SEED", "ImageDataset", "ImageSplit", "load_dataset"]

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "ImageNet16-120")
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


@dataclass(frozen=True)
class ImageSplit:
    """One split: ``uint8`` images ``(n, 3, h, w)`` and ``int64`` labels ``(n,)``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray | torch.Tensor) -> ImageSplit:
        """The images at ``indices``, in that order."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageSplit(self.images[index], self.labels[index])


@dataclass(frozen=True)
class ImageDataset:
    """A dataset held in memory, with its normalisation and training augmentation.

    Attributes:
        name: One of :data:`DATASETS`.
        train: Training split.
        valid: Validation split: what a search scores on.
        test: Test split, kept out of search (report only).
        num_classes: Number of classes.
        input_size: Image height = width.
        mean: Per-channel mean in 0..1 units.
        std: Per-channel std in 0..1 units.
        crop_padding: Zero padding of the random crop augmentation (NATS: 4 at 32px, 2 at 16px).
        flip: Whether augmentation flips horizontally (not for digits).
        split_source: Where the train/valid/test halves come from (a NATS file or the seeded rule).
    """

    name: str
    train: ImageSplit
    valid: ImageSplit
    test: ImageSplit
    num_classes: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_padding: int
    flip: bool
    split_source: str

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` images -> normalised ``float32``."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
        return (images.float() / 255.0 - mean) / std

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """NATS training augmentation on ``uint8`` images: random flip, then padded random crop."""
        n, _, h, w = images.shape
        if self.flip:
            flip = torch.rand(n, generator=generator) < 0.5
            images = torch.where(flip.view(n, 1, 1, 1), images.flip(3), images)
        pad = self.crop_padding
        if pad:
            padded = F.pad(images, (pad, pad, pad, pad))
            dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
            dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
            rows = (dy.view(n, 1) + torch.arange(h)).view(n, 1, h, 1)
            cols = (dx.view(n, 1) + torch.arange(w)).view(n, 1, 1, w)
            images = padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1), rows, cols]
        return images

    def batches(
        self,
        split: ImageSplit,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        augment: bool = False,
        device: torch.device | str = "cpu",
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised ``(images, labels)`` batches of ``split`` on ``device``.

        Args:
            split: The split to iterate.
            batch_size: Images per batch (the last batch may be smaller).
            generator: Shuffles the order and draws the augmentation when given; without it
                the order is the split's own.
            augment: Apply :meth:`augment` (needs ``generator``).
            device: Where the batches go.
        """
        if augment and generator is None:
            raise ValueError("batches: augment=True needs a generator")
        n = len(split)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            images = split.images[index]
            if augment:
                images = self.augment(images, generator)
            yield self.normalize(images.to(device)), split.labels[index].to(device)

    def to_shared(self) -> dict[str, Any]:
        """Plain data for Ray's object store: every split as ``numpy`` arrays (zero-copy on read).

        ``ray.put`` stores numpy arrays in shared memory and every actor on a node maps that
        one copy (torch tensors would be pickled: one private copy per actor).
        """
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("train", "valid", "test"):
            split: ImageSplit = fields[name]
            fields[name] = (split.images.numpy(), split.labels.numpy())
        return fields

    @classmethod
    def from_shared(cls, shared: dict[str, Any]) -> ImageDataset:
        """The dataset of :meth:`to_shared`'s output, viewing its arrays (no copy).

        Arrays read from the object store are read-only; the tensors are views on them and
        are never written (batches are indexed copies).
        """
        fields = dict(shared)
        with warnings.catch_warnings():  # torch warns that the read-only arrays are not writable
            warnings.simplefilter("ignore", UserWarning)
            for name in ("train", "valid", "test"):
                images, labels = fields[name]
                fields[name] = ImageSplit(torch.from_numpy(images), torch.from_numpy(labels))
        return cls(**fields)


def load_dataset(name: str, data_dir: str | Path | None = None, *, digits_size: int = 32) -> ImageDataset:
    """Read a dataset into memory.

    Args:
        name: One of :data:`DATASETS`.
        data_dir: Directory of ``cifar10`` / ``cifar100`` / ``ImageNet16-120`` (the directory
            holding the pickles or its parent); ignored for ``digits``.
        digits_size: Height = width the 8x8 digits are upsampled to (8, 16 or 32).

    Raises:
        EvaluatorError: one line naming the dataset, the path and what was expected there.
    """
    if name == "digits":
        return _load_digits(digits_size)
    if name not in DATASETS:
        raise EvaluatorError(f"dataset: {name!r} is not one of {', '.join(DATASETS)}")
    if data_dir is None:
        raise EvaluatorError(f"data_dir: dataset {name!r} needs data_dir (the directory holding its files)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise EvaluatorError(f"data_dir: {name}: {str(root)!r} is not a directory")
    if name == "cifar10":
        return _load_cifar10(root)
    if name == "cifar100":
        return _load_cifar100(root)
    return _load_imagenet16(root)


def _load_digits(size: int) -> ImageDataset:
    if size not in (8, 16, 32):
        raise EvaluatorError(f"digits_size: must be 8, 16 or 32, got {size!r}")
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(digits.target, dtype=torch.long)
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


def _stats(stats: tuple[tuple[float, ...], tuple[float, ...]]) -> dict[str, Any]:
    mean, std = stats
    return {"mean": tuple(x / 255 for x in mean), "std": tuple(x / 255 for x in std)}


def _load_cifar10(root: Path) -> ImageDataset:
    name = "cifar10"
    directory = _find_dir(root, "cifar-10-batches-py", "data_batch_1", name, _CIFAR_URL)
    train_files = [directory / f"data_batch_{i}" for i in range(1, 6)]
    full = _pickled_images(train_files, name, "labels", 32)
    test = _pickled_images([directory / "test_batch"], name, "labels", 32)
    for split in (full, test):
        _check_labels(split, 10, name, directory)
    train_idx, valid_idx, source = _halves(len(full), directory, "cifar-split.txt", ("train", "valid"), name)
    return ImageDataset(
        name=name,
        train=full.subset(train_idx),
        valid=full.subset(valid_idx),
        test=test,
        num_classes=10,
        input_size=32,
        crop_padding=4,
        flip=True,
        split_source=source,
        **_stats(_CIFAR10_STATS),
    )


def _load_cifar100(root: Path) -> ImageDataset:
    name = "cifar100"
    directory = _find_dir(root, "cifar-100-python", "train", name, _CIFAR_URL)
    train = _pickled_images([directory / "train"], name, "fine_labels", 32)
    full_test = _pickled_images([directory / "test"], name, "fine_labels", 32)
    for split in (train, full_test):
        _check_labels(split, 100, name, directory)
    valid_idx, test_idx, source = _halves(
        len(full_test), directory, "cifar100-test-split.txt", ("xvalid", "xtest"), name
    )
    return ImageDataset(
        name=name,
        train=train,
        valid=full_test.subset(valid_idx),
        test=full_test.subset(test_idx),
        num_classes=100,
        input_size=32,
        crop_padding=4,
        flip=True,
        split_source=source,
        **_stats(_CIFAR100_STATS),
    )


def _first_classes(split: ImageSplit) -> ImageSplit:
    """Keep labels 1..120 (ImageNet16 labels are 1-based) and shift them to 0..119, as xautodl does."""
    keep = (split.labels >= 1) & (split.labels <= _IMAGENET16_CLASSES)
    return ImageSplit(split.images[keep], split.labels[keep] - 1)


def _load_imagenet16(root: Path) -> ImageDataset:
    name = "ImageNet16-120"
    directory = _find_dir(root, "ImageNet16", "train_data_batch_1", name, _IMAGENET16_URL)
    train_files = [directory / f"train_data_batch_{i}" for i in range(1, 11)]
    parts = [_first_classes(_pickled_images([path], name, "labels", 16)) for path in train_files]
    train = ImageSplit(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
    full_valid = _first_classes(_pickled_images([directory / "val_data"], name, "labels", 16))
    valid_idx, test_idx, source = _halves(
        len(full_valid), directory, "imagenet-16-120-test-split.txt", ("xvalid", "xtest"), name
    )
    return ImageDataset(
        name=name,
        train=train,
        valid=full_valid.subset(valid_idx),
        test=full_valid.subset(test_idx),
        num_classes=_IMAGENET16_CLASSES,
        input_size=16,
        crop_padding=2,
        flip=True,
        split_source=source,
        **_stats(_IMAGENET16_STATS),
    )
