"""Dataset ``folder``: an image-folder tree (one subfolder per class in ``train/``, ``valid/``,
``test/``), checked from the image headers and decoded with Pillow into an :class:`ImageDataset`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from natsray.datasets.image_dataset import ImageDataset, ImageSplit
from natsray.datasets.user_data import SPLITS, DatasetInfo, network_size, user_dataset
from natsray.errors import EvaluatorError

__all__ = ["load_folder", "scan_folder"]

_FOLDER_EXPECTED = "train/, valid/ and optional test/, each with one subfolder of images per class"


def _image_suffixes() -> frozenset[str]:
    from PIL import Image

    return frozenset(Image.registered_extensions())


def _unreadable(path: Path, exc: Exception) -> EvaluatorError:
    first = (str(exc).strip().splitlines() or [""])[0]
    detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return EvaluatorError(f"folder: {path}: not a readable image ({detail})")


def scan_folder(root: Path, image_size: int | None) -> tuple[DatasetInfo, dict[str, list[tuple[Path, int]]]]:
    """Check an image-folder tree without decoding: ``(info, [(file, label)] per split)``."""
    from PIL import Image

    if not root.is_dir():
        raise EvaluatorError(f"folder: {root} is not a directory (expected {_FOLDER_EXPECTED})")
    present = [split for split in SPLITS if (root / split).is_dir()]
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
    size = network_size(height, width, image_size, f"folder: {root}")
    info = DatasetInfo(
        name="folder",
        path=root,
        num_classes=len(classes),
        channels=channels,
        image_size=size,
        sizes={split: len(files.get(split, ())) for split in SPLITS},
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


def load_folder(root: Path, image_size: int | None) -> ImageDataset:
    """The image-folder tree at ``root``, checked (:func:`scan_folder`), then decoded on threads."""
    info, files = scan_folder(root.resolve(), image_size)
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
    return user_dataset("folder", splits, info, source, splits["train"].images.numpy())
