"""Image classification datasets as in-memory tensors: digits, CIFAR-10/100, ImageNet16-120,
and the user's own data (``arrays``: one ``.npz`` file; ``folder``: an image-folder tree).

:func:`load_dataset` reads a dataset once (an evaluator does it in ``setup``) into an
:class:`ImageDataset`: ``uint8`` images of shape ``(n, 3, size, size)`` with ``int64`` labels,
split into ``train`` / ``valid`` / ``test``. Batches are normalised (and, for training,
augmented) on the fly by :meth:`ImageDataset.batches`, so a dataset costs its ``uint8`` size;
:meth:`ImageDataset.to` keeps it resident on an accelerator, where batches are then indexed,
augmented (draws from the candidate's generator, :meth:`ImageDataset.epoch_plan`) and
normalised without a per-batch transfer.

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

The user's own data (:data:`USER_DATASETS`) brings its own splits:

- ``arrays``: ``data_dir`` names one ``.npz`` file (``numpy.savez``) holding ``x_train``,
  ``y_train``, ``x_valid``, ``y_valid`` and optionally ``x_test``, ``y_test``. Images are
  ``(n, h, w, c)`` (NHWC), ``(n, c, h, w)`` (NCHW) or ``(n, h, w)``, with ``c`` 1 or 3,
  ``uint8`` or any integer / float dtype with values in 0..255 (floats in 0..1 are scaled by
  255); labels are integers ``0..C-1``, every class present in ``y_train``.
- ``folder``: ``data_dir`` names a directory with ``train/``, ``valid/`` and optionally
  ``test/``, each holding one subfolder of images per class (the same class folders in every
  split; class ``i`` is the ``i``-th folder name in sorted order, as torchvision's
  ``ImageFolder``). Images are decoded with Pillow and converted to RGB.

Both are resized (bilinear) to ``image_size`` when it is given, else kept at their own size,
which must then be one square size for every image. The network sees 3 channels: 1-channel
images are replicated, as the digits are. Classes and the per-channel mean / std (of the
training split) come from the data. :func:`check_dataset` checks such a dataset cheaply (file
headers, labels, folder structure; no image decoded) so a run can refuse it before it starts.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from natsray.evaluators.base import EvaluatorError

__all__ = [
    "DATASETS",
    "SPLIT_SEED",
    "USER_DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "ImageSplit",
    "check_dataset",
    "check_image_size",
    "load_dataset",
]

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "ImageNet16-120")
USER_DATASETS: tuple[str, ...] = ("arrays", "folder")
"""The user's own data: ``arrays`` (one ``.npz`` file) and ``folder`` (an image-folder tree)."""
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
        classes: Class names, index ``i`` for label ``i`` (``folder``: the class folder names;
            ``arrays``: ``"0"`` .. ``"C-1"``; empty for the bundled datasets).
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
    classes: tuple[str, ...] = ()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` images -> normalised ``float32``, on the images' device."""
        mean, std = self._mean_std(images.device)
        return (images.float() / 255.0 - mean) / std

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return mean.to(device, non_blocking=True), std.to(device, non_blocking=True)

    def draw_augmentation(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The random draws of :meth:`augment` for ``n`` images, from ``generator`` (on its device).

        Drawn in this order: ``flip = rand(n) < 0.5`` (when :attr:`flip`), then the crop's row
        offsets ``dy`` and column offsets ``dx``, each ``randint(0, 2 * crop_padding + 1, (n,))``
        (when ``crop_padding > 0``); what is not drawn is 0.

        Returns:
            ``int64`` tensor of shape ``(3, n)``: rows ``flip`` (0 / 1), ``dy``, ``dx``.
        """
        draws = torch.zeros(3, n, dtype=torch.long, device=generator.device)
        if self.flip:
            draws[0] = torch.rand(n, generator=generator, device=generator.device) < 0.5
        pad = self.crop_padding
        if pad:
            for row in (1, 2):
                draws[row] = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=generator.device)
        return draws

    def apply_augmentation(self, images: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Flip, then crop with zero padding, ``uint8`` images ``(n, 3, h, w)`` as ``draws`` say.

        Image ``i`` is flipped horizontally when ``draws[0, i]`` is 1, zero-padded by
        :attr:`crop_padding` on every side and cropped back to ``h x w`` starting at row
        ``draws[1, i]``, column ``draws[2, i]`` of the padded image (offset ``crop_padding``
        is the centre). One gather on the images' device; ``draws`` (from
        :meth:`draw_augmentation`) is moved there.
        """
        n, _, h, w = images.shape
        pad = self.crop_padding
        device = images.device
        draws = draws.to(device, non_blocking=True)
        flip, dy, dx = draws[0].bool(), draws[1], draws[2]
        padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
        rows = (dy.view(n, 1) + torch.arange(h, device=device)).view(n, 1, h, 1)
        cols = dx.view(n, 1) + torch.arange(w, device=device)
        # flipping then cropping = cropping the mirrored columns of the (symmetrically) padded image
        cols = torch.where(flip.view(n, 1), (w + 2 * pad - 1) - cols, cols).view(n, 1, 1, w)
        channels = torch.arange(images.shape[1], device=device).view(1, -1, 1, 1)
        return padded[torch.arange(n, device=device).view(n, 1, 1, 1), channels, rows, cols]

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """NATS training augmentation on ``uint8`` images: random flip, then padded random crop.

        :meth:`draw_augmentation` from ``generator``, then :meth:`apply_augmentation`.
        """
        if not self.flip and not self.crop_padding:
            return images
        return self.apply_augmentation(images, self.draw_augmentation(len(images), generator))

    def to(self, device: torch.device | str) -> ImageDataset:
        """This dataset with every split's tensors on ``device`` (``uint8``; no copy when already there).

        :meth:`batches` of a split on the device it is asked for index, augment and normalise
        there: one copy of the dataset per process, no per-batch transfer.
        """
        moved = {}
        for name in ("train", "valid", "test"):
            split: ImageSplit = getattr(self, name)
            moved[name] = ImageSplit(split.images.to(device), split.labels.to(device))
        return replace(self, **moved)

    def epoch_plan(
        self, n: int, batch_size: int, generator: torch.Generator | None, augment: bool
    ) -> torch.Tensor:
        """One epoch's order and augmentation draws, as :meth:`batches` uses them.

        From ``generator``: ``randperm(n)``, then per batch (in order) :meth:`draw_augmentation`
        of that batch's size when ``augment``. Without a generator the order is ``0..n-1``.

        Returns:
            ``int64`` tensor ``(4, n)`` on the generator's device (CPU without one): the image
            order, then the ``flip``, ``dy``, ``dx`` rows of each position.
        """
        if augment and generator is None:
            raise ValueError("batches: augment=True needs a generator")
        device = generator.device if generator is not None else torch.device("cpu")
        plan = torch.zeros(4, n, dtype=torch.long, device=device)
        if generator is not None:
            plan[0] = torch.randperm(n, generator=generator, device=device)
        else:
            plan[0] = torch.arange(n)
        if augment:
            for start in range(0, n, batch_size):
                size = min(batch_size, n - start)
                plan[1:, start : start + size] = self.draw_augmentation(size, generator)
        return plan

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

        The epoch's order and augmentation are drawn up front (:meth:`epoch_plan`) and copied to
        ``device`` once; a split already on ``device`` (:meth:`to`) is indexed there, otherwise
        each batch's ``uint8`` images are indexed on the host and copied. Either way flips and
        crops are :meth:`apply_augmentation` on ``device``, so both give the same batches.

        Args:
            split: The split to iterate.
            batch_size: Images per batch (the last batch may be smaller).
            generator: Shuffles the order and draws the augmentation when given; without it
                the order is the split's own.
            augment: Apply the augmentation (needs ``generator``); a no-op for a dataset
                without flip and crop padding.
            device: Where the batches go.
        """
        if augment and generator is None:
            raise ValueError("batches: augment=True needs a generator")
        device = torch.device(device)
        n = len(split)
        augment = augment and (self.flip or self.crop_padding > 0)
        plan = self.epoch_plan(n, batch_size, generator, augment)
        mean, std = self._mean_std(device)
        resident = split.images.device == device
        order = plan[0].to(split.images.device, non_blocking=True)
        plan = plan.to(device, non_blocking=True)
        labels = split.labels.to(device, non_blocking=True)  # a no-op when resident
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            images = split.images[index]
            if not resident:
                images = images.to(device, non_blocking=True)
            if augment:
                images = self.apply_augmentation(images, plan[1:, start : start + batch_size])
            yield (images.float() / 255.0 - mean) / std, labels[plan[0, start : start + batch_size]]

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


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    digits_size: int = 32,
    image_size: int | None = None,
) -> ImageDataset:
    """Read a dataset into memory.

    Args:
        name: One of :data:`DATASETS` or :data:`USER_DATASETS`.
        data_dir: Directory of ``cifar10`` / ``cifar100`` / ``ImageNet16-120`` (the directory
            holding the pickles or its parent), the ``.npz`` file of ``arrays``, the root
            directory of ``folder``; ignored for ``digits``.
        digits_size: Height = width the 8x8 digits are upsampled to (8, 16 or 32).
        image_size: ``arrays`` / ``folder`` only: height = width every image is resized to (a
            multiple of 4); None keeps the images' own size, which must then be one square
            size, a multiple of 4.

    Raises:
        EvaluatorError: one line naming the dataset, the path (for a bad image, the file) and
            what was expected there.
    """
    if name == "digits":
        return _load_digits(digits_size)
    if name not in DATASETS + USER_DATASETS:
        raise EvaluatorError(f"dataset: {name!r} is not one of {', '.join(DATASETS + USER_DATASETS)}")
    if image_size is not None and name not in USER_DATASETS:
        raise EvaluatorError(f"image_size: only for dataset {' or '.join(USER_DATASETS)}, not {name!r}")
    if data_dir is None:
        what = "the .npz file" if name == "arrays" else "the directory holding its files"
        raise EvaluatorError(f"data_dir: dataset {name!r} needs data_dir ({what})")
    root = Path(data_dir).expanduser()
    if name == "arrays":
        return _load_arrays(root, image_size)
    if name == "folder":
        return _load_folder(root, image_size)
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


# --- the user's own data: arrays (.npz) and folder (image-folder tree) ---------------------------

_NPZ_KEYS = ("x_train", "y_train", "x_valid", "y_valid")
_NPZ_EXPECTED = "x_train, y_train, x_valid, y_valid (optional x_test, y_test)"
_FOLDER_EXPECTED = "train/, valid/ and optional test/, each with one subfolder of images per class"
_SPLITS = ("train", "valid", "test")
_CHUNK = 1024  # images per chunk when resizing or summing (bounds the float copies)


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`check_dataset` found in the user's dataset, without decoding an image.

    Attributes:
        name: ``arrays`` or ``folder``.
        path: The ``.npz`` file or the folder root.
        num_classes: ``C``: labels are ``0..C-1``.
        channels: Channels of the stored images (1 or 3; the network always sees 3).
        image_size: Height = width the network sees (after resizing).
        sizes: Images per split, ``{"train": n, "valid": n, "test": n}`` (0: no test split).
        classes: Class names, index ``i`` for label ``i``.
    """

    name: str
    path: Path
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


def check_dataset(name: str, data_dir: str | Path, *, image_size: int | None = None) -> DatasetInfo:
    """Check the user's dataset cheaply, as ``natsray validate`` and ``run`` do before Ray starts.

    ``arrays``: the ``.npz`` keys, the array headers (dims, layout, dtype, lengths) and the
    labels (read in full: they are small). ``folder``: the split and class folders, and every
    image's header (format and size; Pillow reads a few bytes). No image is decoded: a file
    whose header is fine but whose data is corrupt fails later, in :func:`load_dataset`.
    Answers repeated calls on an unchanged path from memory (a sweep checks every run).

    Args:
        name: ``arrays`` or ``folder``.
        data_dir: The ``.npz`` file or the folder root.
        image_size: As for :func:`load_dataset`.

    Raises:
        EvaluatorError: one line naming the file and what was expected.
    """
    if name not in USER_DATASETS:
        raise EvaluatorError(f"dataset: {name!r} is not one of {', '.join(USER_DATASETS)}")
    path = Path(data_dir).expanduser().resolve()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise EvaluatorError(f"{name}: {path}: no such file or directory") from None
    return _checked(name, path, image_size, stamp)


@functools.lru_cache(maxsize=16)
def _checked(name: str, path: Path, image_size: int | None, _stamp: int) -> DatasetInfo:
    if name == "arrays":
        return _inspect_arrays(path, image_size)[0]
    return _scan_folder(path, image_size)[0]


def _network_size(height: int, width: int, image_size: int | None, where: str) -> int:
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


def _channel_stats(images: np.ndarray) -> dict[str, tuple[float, ...]]:
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


def _resized(images: np.ndarray, size: int) -> np.ndarray:
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


def _user_dataset(
    name: str, splits: dict[str, ImageSplit], info: DatasetInfo, source: str, stats_of: np.ndarray
) -> ImageDataset:
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
        **_channel_stats(stats_of),
    )


# arrays ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    """Shape and dtype of one array of an ``.npz``, from its header."""

    shape: tuple[int, ...]
    dtype: np.dtype


def _npz_members(path: Path) -> dict[str, _Member]:
    """Every array's shape and dtype, read from the headers (no array data is read)."""
    if path.is_dir():
        raise EvaluatorError(
            f"arrays: {path} is a directory; expected an .npz file (numpy.savez) with {_NPZ_EXPECTED} "
            "(a directory of class folders is dataset: folder)"
        )
    members: dict[str, _Member] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for entry in archive.infolist():
                if not entry.filename.endswith(".npy"):
                    continue
                with archive.open(entry) as handle:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
                members[entry.filename[: -len(".npy")]] = _Member(tuple(shape), np.dtype(dtype))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise EvaluatorError(f"arrays: {path} is not a readable .npz file (numpy.savez): {first}") from None
    return members


def _layout(member: _Member, key: str, path: Path) -> tuple[str, int, int, int]:
    """``(layout, channels, height, width)`` of an image array: layout ``NHW``, ``NHWC`` or ``NCHW``."""
    expected = "(n, h, w, c) NHWC or (n, c, h, w) NCHW with c = 1 or 3, or (n, h, w)"
    shape = member.shape
    if member.dtype.kind not in "uif":
        raise EvaluatorError(
            f"arrays: {path}: {key} has dtype {member.dtype}, expected uint8 or float images"
        )
    if len(shape) == 3:
        return "NHW", 1, shape[1], shape[2]
    if len(shape) != 4:
        raise EvaluatorError(f"arrays: {path}: {key} has shape {shape}, expected {expected}")
    nchw, nhwc = shape[1] in (1, 3), shape[3] in (1, 3)
    if nchw and nhwc:  # tiny images: take the reading that makes them square (NCHW on a tie)
        nhwc = shape[1] == shape[2] and shape[2] != shape[3]
        nchw = not nhwc
    if nchw:
        return "NCHW", shape[1], shape[2], shape[3]
    if nhwc:
        return "NHWC", shape[3], shape[1], shape[2]
    raise EvaluatorError(f"arrays: {path}: {key} has shape {shape}, expected {expected}")


def _inspect_arrays(
    path: Path, image_size: int | None
) -> tuple[DatasetInfo, dict[str, str], dict[str, np.ndarray]]:
    """Check an ``.npz`` dataset without reading its images: ``(info, layouts, labels)`` per split."""
    members = _npz_members(path)
    missing = [key for key in _NPZ_KEYS if key not in members]
    if ("x_test" in members) != ("y_test" in members):
        missing.append("y_test" if "x_test" in members else "x_test")
    if missing:
        has = ", ".join(sorted(members)) or "no arrays"
        raise EvaluatorError(f"arrays: {path} has no {missing[0]} (expected {_NPZ_EXPECTED}; it has {has})")
    splits = [split for split in _SPLITS if f"x_{split}" in members]
    layouts: dict[str, str] = {}
    shapes: dict[str, tuple[int, int, int]] = {}
    sizes = dict.fromkeys(_SPLITS, 0)
    for split in splits:
        x, y = members[f"x_{split}"], members[f"y_{split}"]
        layouts[split], *shape = _layout(x, f"x_{split}", path)
        shapes[split] = tuple(shape)
        if shapes[split] != shapes["train"]:
            c, h, w = shapes[split]
            c0, h0, w0 = shapes["train"]
            raise EvaluatorError(
                f"arrays: {path}: x_{split} images are {c}x{h}x{w} (c x h x w) "
                f"but x_train's are {c0}x{h0}x{w0}"
            )
        if y.dtype.kind not in "iu":
            raise EvaluatorError(
                f"arrays: {path}: y_{split} has dtype {y.dtype}, expected integer class labels 0..C-1"
            )
        if len(y.shape) != 1:
            hint = " (one-hot? store y.argmax(1))" if len(y.shape) == 2 else ""
            raise EvaluatorError(
                f"arrays: {path}: y_{split} has shape {y.shape}, expected integer labels of shape (n,){hint}"
            )
        if y.shape[0] != x.shape[0]:
            raise EvaluatorError(
                f"arrays: {path}: y_{split} has {y.shape[0]} labels but x_{split} has {x.shape[0]} images"
            )
        if split != "test" and x.shape[0] == 0:
            raise EvaluatorError(f"arrays: {path}: x_{split} holds no images")
        sizes[split] = x.shape[0]
    channels, height, width = shapes["train"]
    size = _network_size(height, width, image_size, f"arrays: {path}: x_train")
    with np.load(path, allow_pickle=False) as npz:
        labels = {split: np.asarray(npz[f"y_{split}"]).astype(np.int64) for split in splits}
    num_classes = _check_label_values(labels, f"arrays: {path}")
    info = DatasetInfo(
        name="arrays",
        path=path,
        num_classes=num_classes,
        channels=channels,
        image_size=size,
        sizes=sizes,
        classes=tuple(str(i) for i in range(num_classes)),
    )
    return info, layouts, labels


def _check_label_values(labels: dict[str, np.ndarray], where: str) -> int:
    """``C``: ``y_train`` holds every class ``0..C-1`` (C >= 2), the other splits only those."""
    present = np.unique(labels["train"])
    if present[0] < 0:
        raise EvaluatorError(f"{where}: y_train holds label {present[0]}, expected class indices 0..C-1")
    num_classes = int(present[-1]) + 1
    if len(present) != num_classes:
        gap = int(np.flatnonzero(present != np.arange(len(present)))[0])
        hint = "; 1-based labels? subtract 1" if gap == 0 else ""
        raise EvaluatorError(
            f"{where}: y_train has no sample of class {gap} (labels must be 0..{num_classes - 1} "
            f"with every class in the training split{hint})"
        )
    if num_classes < 2:
        raise EvaluatorError(f"{where}: y_train holds a single class; expected at least 2")
    for split in ("valid", "test"):
        values = labels.get(split)
        if values is not None and len(values):
            bad = values[(values < 0) | (values >= num_classes)]
            if len(bad):
                raise EvaluatorError(
                    f"{where}: y_{split} holds label {bad[0]}, expected 0..{num_classes - 1} "
                    "(the classes of y_train)"
                )
    return num_classes


def _pixels(x: np.ndarray, layout: str, key: str, path: Path) -> np.ndarray:
    """An image array as ``uint8`` NCHW with 3 channels.

    ``uint8`` is kept; other integers must lie in 0..255; a float array lies in 0..1 (scaled
    by 255) or in 0..255 (rounded).
    """
    if x.dtype != np.uint8 and len(x):
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise EvaluatorError(f"arrays: {path}: {key} holds NaN or inf values")
        low, high = x.min(), x.max()
        if low < 0 or high > 255:
            expected = "0..1 or 0..255" if x.dtype.kind == "f" else "0..255"
            raise EvaluatorError(
                f"arrays: {path}: {key} values span {low}..{high}, expected {expected} "
                "(unnormalised images: natsray normalises with the training split's mean and std)"
            )
        if x.dtype.kind == "f":
            x = np.rint(x * 255.0) if high <= 1.0 else np.rint(x)
        x = x.astype(np.uint8)
    if layout == "NHW":
        x = x[:, None]
    elif layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    return np.repeat(x, 3, axis=1) if x.shape[1] == 1 else np.ascontiguousarray(x)


def _load_arrays(path: Path, image_size: int | None) -> ImageDataset:
    info, layouts, labels = _inspect_arrays(path, image_size)
    splits: dict[str, ImageSplit] = {}
    with np.load(path, allow_pickle=False) as npz:
        for split, layout in layouts.items():
            images = _resized(_pixels(npz[f"x_{split}"], layout, f"x_{split}", path), info.image_size)
            splits[split] = ImageSplit(torch.from_numpy(images), torch.from_numpy(labels[split]))
    source = f"x_{'/x_'.join(layouts)} of {path}"
    return _user_dataset("arrays", splits, info, source, splits["train"].images.numpy())


# folder ------------------------------------------------------------------------------------------


def _image_suffixes() -> frozenset[str]:
    from PIL import Image

    return frozenset(Image.registered_extensions())


def _unreadable(path: Path, exc: Exception) -> EvaluatorError:
    first = (str(exc).strip().splitlines() or [""])[0]
    detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return EvaluatorError(f"folder: {path}: not a readable image ({detail})")


def _scan_folder(root: Path, image_size: int | None) -> tuple[DatasetInfo, dict[str, list[tuple[Path, int]]]]:
    """Check an image-folder tree without decoding: ``(info, [(file, label)] per split)``."""
    from PIL import Image

    if not root.is_dir():
        raise EvaluatorError(f"folder: {root} is not a directory (expected {_FOLDER_EXPECTED})")
    present = [split for split in _SPLITS if (root / split).is_dir()]
    for split in ("train", "valid"):
        if split not in present:
            raise EvaluatorError(f"folder: {root} has no {split}/ (expected {_FOLDER_EXPECTED})")
    classes: tuple[str, ...] = ()
    for split in present:
        names = tuple(
            sorted(d.name for d in (root / split).iterdir() if d.is_dir() and not d.name.startswith("."))
        )
        if split == "train":
            classes = names
            if len(names) < 2:
                raise EvaluatorError(
                    f"folder: {root / split} has {len(names)} class folder(s), "
                    "expected one per class (at least 2)"
                )
        elif names != classes:
            extra, lacking = sorted(set(names) - set(classes)), sorted(set(classes) - set(names))
            if extra:
                problem = f"has class folder {extra[0]!r}, which train/ lacks"
            else:
                problem = f"lacks class folder {lacking[0]!r}, which train/ has"
            raise EvaluatorError(
                f"folder: {root / split} {problem} (every split needs the same class folders)"
            )
    suffixes = _image_suffixes()
    files: dict[str, list[tuple[Path, int]]] = {}
    sizes: dict[tuple[int, int], Path] = {}
    channels = 1
    for split in present:
        files[split] = []
        for label, name in enumerate(classes):
            directory = root / split / name
            found = sorted(
                path
                for path in directory.rglob("*")
                if path.suffix.lower() in suffixes
                and not any(part.startswith(".") for part in path.relative_to(directory).parts)
                and path.is_file()
            )
            if not found:
                raise EvaluatorError(
                    f"folder: {directory} holds no images (expected at least one image file, "
                    f"e.g. .png or .jpg, in every class folder)"
                )
            for path in found:
                try:
                    with Image.open(path) as image:
                        size, mode = image.size, image.mode
                except Exception as exc:
                    raise _unreadable(path, exc) from None
                if mode.startswith(("I", "F")):  # RGB conversion would clip them to 0..255
                    raise EvaluatorError(
                        f"folder: {path}: a {mode} (16/32-bit) image; expected 8-bit images "
                        "(grayscale, RGB or RGBA)"
                    )
                sizes.setdefault(size, path)
                channels = channels if mode in ("1", "L", "LA") else 3
            files[split] += [(path, label) for path in found]
    if image_size is None and len(sizes) > 1:
        (a, path_a), (b, path_b) = list(sizes.items())[:2]
        raise EvaluatorError(
            f"folder: images differ in size ({path_a} is {a[0]}x{a[1]}, {path_b} is {b[0]}x{b[1]}): "
            "set image_size to resize every image to one square size"
        )
    width, height = next(iter(sizes))
    size = _network_size(height, width, image_size, f"folder: {root}")
    info = DatasetInfo(
        name="folder",
        path=root,
        num_classes=len(classes),
        channels=channels,
        image_size=size,
        sizes={split: len(files.get(split, ())) for split in _SPLITS},
        classes=classes,
    )
    return info, files


def _decode(path: Path, size: int) -> np.ndarray:
    """One image as ``uint8`` ``(3, size, size)`` RGB (bilinear resize when needed)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb).transpose(2, 0, 1)
    except Exception as exc:
        raise _unreadable(path, exc) from None


def _load_folder(root: Path, image_size: int | None) -> ImageDataset:
    info, files = _scan_folder(root.resolve(), image_size)
    size = info.image_size
    splits: dict[str, ImageSplit] = {}
    # Pillow decodes without holding the GIL: threads decode in parallel
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for split, entries in files.items():
            images = np.empty((len(entries), 3, size, size), dtype=np.uint8)
            for i, pixels in enumerate(pool.map(lambda entry: _decode(entry[0], size), entries)):
                images[i] = pixels
            labels = np.array([label for _, label in entries], dtype=np.int64)
            splits[split] = ImageSplit(torch.from_numpy(images), torch.from_numpy(labels))
    source = f"{'/, '.join(files)}/ of {info.path}"
    return _user_dataset("folder", splits, info, source, splits["train"].images.numpy())
