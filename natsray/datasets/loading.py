"""Every dataset by its name: :func:`load_dataset` reads one into memory, :func:`check_dataset`
checks the user's own cheaply before a run starts.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from natsray.datasets.arrays import inspect_arrays, load_arrays
from natsray.datasets.builtin import DATASETS, load_cifar10, load_cifar100, load_digits, load_imagenet16
from natsray.datasets.folder import load_folder, scan_folder
from natsray.datasets.image_dataset import ImageDataset
from natsray.datasets.plugin import is_dataset_plugin, load_plugin, unknown_dataset
from natsray.datasets.user_data import USER_DATASETS, DatasetInfo
from natsray.errors import EvaluatorError

__all__ = ["check_dataset", "load_dataset"]


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    digits_size: int = 32,
    image_size: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> ImageDataset:
    """Read a dataset into memory.

    Args:
        name: One of :data:`DATASETS` or :data:`USER_DATASETS`, or a dataset plugin: an import path
            ``"package.module:function"`` or a short name registered under the entry-point group
            ``natsray.datasets`` (:mod:`natsray.datasets.plugin`), called here with ``params``.
        data_dir: Directory of ``cifar10`` / ``cifar100`` / ``ImageNet16-120`` (the directory
            holding the pickles or its parent), the ``.npz`` file of ``arrays``, the root
            directory of ``folder``; ignored for ``digits``.
        digits_size: Height = width the 8x8 digits are upsampled to (8, 16 or 32).
        image_size: ``arrays`` / ``folder`` only: height = width every image is resized to (a
            multiple of 4); None keeps the images' own size, which must then be one square
            size, a multiple of 4. Also for a dataset plugin.
        params: A dataset plugin's keyword arguments.

    Raises:
        EvaluatorError: one line naming the dataset, the path (for a bad image, the file) and
            what was expected there.
    """
    if name == "digits":
        return load_digits(digits_size)
    if is_dataset_plugin(name):
        return load_plugin(name, params, image_size)
    if name not in DATASETS + USER_DATASETS:
        raise EvaluatorError(f"dataset: {unknown_dataset(name, DATASETS + USER_DATASETS)}")
    if image_size is not None and name not in USER_DATASETS:
        raise EvaluatorError(f"image_size: only for dataset {' or '.join(USER_DATASETS)}, not {name!r}")
    if data_dir is None:
        what = "the .npz file" if name == "arrays" else "the directory holding its files"
        raise EvaluatorError(f"data_dir: dataset {name!r} needs data_dir ({what})")
    root = Path(data_dir).expanduser()
    if name == "arrays":
        return load_arrays(root, image_size)
    if name == "folder":
        return load_folder(root, image_size)
    if not root.is_dir():
        raise EvaluatorError(f"data_dir: {name}: {str(root)!r} is not a directory")
    if name == "cifar10":
        return load_cifar10(root)
    if name == "cifar100":
        return load_cifar100(root)
    return load_imagenet16(root)


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
        return inspect_arrays(path, image_size)[0]
    return scan_folder(path, image_size)[0]
