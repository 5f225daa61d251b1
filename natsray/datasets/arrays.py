"""Dataset ``arrays``: the user's images and labels in one ``.npz`` file (``numpy.savez``),
checked from the array headers and read into an :class:`ImageDataset`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from natsray.datasets.image_dataset import ImageDataset, ImageSplit
from natsray.datasets.pixels import resized
from natsray.datasets.user_data import SPLITS, DatasetInfo, network_size, user_dataset
from natsray.errors import EvaluatorError

__all__ = ["CheckedArrays", "inspect_arrays", "inspect_members", "load_arrays", "pixels_nchw"]

_NPZ_KEYS = ("x_train", "y_train", "x_valid", "y_valid")
_NPZ_EXPECTED = "x_train, y_train, x_valid, y_valid (optional x_test, y_test)"


@dataclass(frozen=True)
class ArrayHeader:
    """Shape and dtype of one array of an ``.npz``, from its header."""

    shape: tuple[int, ...]
    dtype: np.dtype


def _npz_members(path: Path) -> dict[str, ArrayHeader]:
    """Every array's shape and dtype, read from the headers (no array data is read)."""
    if path.is_dir():
        raise EvaluatorError(
            f"arrays: {path} is a directory; expected an .npz file (numpy.savez) with {_NPZ_EXPECTED} "
            "(a directory of class folders is dataset: folder)"
        )
    members: dict[str, ArrayHeader] = {}
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
                members[entry.filename[: -len(".npy")]] = ArrayHeader(tuple(shape), np.dtype(dtype))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise EvaluatorError(f"arrays: {path} is not a readable .npz file (numpy.savez): {first}") from None
    return members


def _layout(member: ArrayHeader, key: str, where: str) -> tuple[str, int, int, int]:
    """``(layout, channels, height, width)`` of an image array: layout ``NHW``, ``NHWC`` or ``NCHW``."""
    expected = "(n, h, w, c) NHWC or (n, c, h, w) NCHW with c = 1 or 3, or (n, h, w)"
    shape = member.shape
    if member.dtype.kind not in "uif":
        raise EvaluatorError(f"{where}: {key} has dtype {member.dtype}, expected uint8 or float images")
    if len(shape) == 3:
        return "NHW", 1, shape[1], shape[2]
    if len(shape) != 4:
        raise EvaluatorError(f"{where}: {key} has shape {shape}, expected {expected}")
    nchw, nhwc = shape[1] in (1, 3), shape[3] in (1, 3)
    if nchw and nhwc:  # tiny images: take the reading that makes them square (NCHW on a tie)
        nhwc = shape[1] == shape[2] and shape[2] != shape[3]
        nchw = not nhwc
    if nchw:
        return "NCHW", shape[1], shape[2], shape[3]
    if nhwc:
        return "NHWC", shape[3], shape[1], shape[2]
    raise EvaluatorError(f"{where}: {key} has shape {shape}, expected {expected}")


def inspect_arrays(
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

    def labels_of(splits: list[str]) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as npz:
            return {split: np.asarray(npz[f"y_{split}"]) for split in splits}

    checked = inspect_members(members, labels_of, f"arrays: {path}", image_size)
    info = DatasetInfo(
        name="arrays",
        path=path,
        num_classes=checked.num_classes,
        channels=checked.channels,
        image_size=checked.image_size,
        sizes=checked.sizes,
        classes=tuple(str(i) for i in range(checked.num_classes)),
    )
    return info, checked.layouts, checked.labels


@dataclass(frozen=True)
class CheckedArrays:
    """What :func:`inspect_members` found: per split the image layout and the labels, and the sizes."""

    layouts: dict[str, str]
    labels: dict[str, np.ndarray]
    num_classes: int
    channels: int
    image_size: int
    sizes: dict[str, int]


def inspect_members(
    members: Mapping[str, ArrayHeader],
    labels_of: Callable[[list[str]], dict[str, np.ndarray]],
    where: str,
    image_size: int | None,
) -> CheckedArrays:
    """Check the arrays ``x_train``, ``y_train``, ... of a user's dataset from their shapes and
    dtypes, then their labels (``labels_of(splits)``, read only once the shapes are fine); what
    ``arrays`` (an ``.npz``) and a dataset plugin (arrays in memory) share.

    Raises:
        EvaluatorError: ``"{where}: ..."``, one line naming the array and what was expected.
    """
    splits = [split for split in SPLITS if f"x_{split}" in members]
    layouts: dict[str, str] = {}
    shapes: dict[str, tuple[int, int, int]] = {}
    sizes = dict.fromkeys(SPLITS, 0)
    for split in splits:
        x, y = members[f"x_{split}"], members[f"y_{split}"]
        layouts[split], *shape = _layout(x, f"x_{split}", where)
        shapes[split] = tuple(shape)
        if shapes[split] != shapes["train"]:
            c, h, w = shapes[split]
            c0, h0, w0 = shapes["train"]
            raise EvaluatorError(
                f"{where}: x_{split} images are {c}x{h}x{w} (c x h x w) but x_train's are {c0}x{h0}x{w0}"
            )
        if y.dtype.kind not in "iu":
            raise EvaluatorError(
                f"{where}: y_{split} has dtype {y.dtype}, expected integer class labels 0..C-1"
            )
        if len(y.shape) != 1:
            hint = " (one-hot? store y.argmax(1))" if len(y.shape) == 2 else ""
            raise EvaluatorError(
                f"{where}: y_{split} has shape {y.shape}, expected integer labels of shape (n,){hint}"
            )
        if y.shape[0] != x.shape[0]:
            raise EvaluatorError(
                f"{where}: y_{split} has {y.shape[0]} labels but x_{split} has {x.shape[0]} images"
            )
        if split != "test" and x.shape[0] == 0:
            raise EvaluatorError(f"{where}: x_{split} holds no images")
        sizes[split] = x.shape[0]
    channels, height, width = shapes["train"]
    size = network_size(height, width, image_size, f"{where}: x_train")
    labels = {split: values.astype(np.int64) for split, values in labels_of(splits).items()}
    num_classes = _check_label_values(labels, where)
    return CheckedArrays(layouts, labels, num_classes, channels, size, sizes)


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


def pixels_nchw(x: np.ndarray, layout: str, key: str, where: str) -> np.ndarray:
    """An image array as ``uint8`` NCHW with 3 channels.

    ``uint8`` is kept; other integers must lie in 0..255; a float array lies in 0..1 (scaled
    by 255) or in 0..255 (rounded).
    """
    if x.dtype != np.uint8 and len(x):
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise EvaluatorError(f"{where}: {key} holds NaN or inf values")
        low, high = x.min(), x.max()
        if low < 0 or high > 255:
            expected = "0..1 or 0..255" if x.dtype.kind == "f" else "0..255"
            raise EvaluatorError(
                f"{where}: {key} values span {low}..{high}, expected {expected} "
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


def load_arrays(path: Path, image_size: int | None) -> ImageDataset:
    """The ``.npz`` dataset at ``path``, checked (:func:`inspect_arrays`), then read and resized."""
    info, layouts, labels = inspect_arrays(path, image_size)
    splits: dict[str, ImageSplit] = {}
    with np.load(path, allow_pickle=False) as npz:
        for split, layout in layouts.items():
            images = resized(
                pixels_nchw(npz[f"x_{split}"], layout, f"x_{split}", f"arrays: {path}"), info.image_size
            )
            splits[split] = ImageSplit(torch.from_numpy(images), torch.from_numpy(labels[split]))
    source = f"x_{'/x_'.join(layouts)} of {path}"
    return user_dataset("arrays", splits, info, source, splits["train"].images.numpy())
