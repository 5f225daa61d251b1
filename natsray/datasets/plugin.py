"""Dataset plugins: the user's own Python function (or class) that returns the data in memory.

``evaluator.dataset: "package.module:name"`` (or a short name an installed package registers under
the entry-point group ``natsray.datasets``; from Python, the callable itself) names a callable that
natsray calls with ``evaluator.dataset_params`` as keyword arguments. It returns what an ``arrays``
``.npz`` holds, in memory:

- a mapping with ``x_train``, ``y_train``, ``x_valid``, ``y_valid``, optionally ``x_test``,
  ``y_test``, ``classes`` (a name per class), ``mean`` and ``std`` (per channel, 0..1 units);
- or a tuple ``(x_train, y_train, x_valid, y_valid)`` / ``(..., x_test, y_test)``;
- or an object with those attributes (a class's instance: the class itself may be the plugin).

Arrays are numpy arrays or torch tensors (or anything ``numpy.asarray`` takes); images and labels
follow the ``.npz`` rules (:mod:`natsray.datasets.arrays`), checked by the same code, so a plugin
gets the same one-line messages, prefixed ``dataset package.module:name``. The result becomes the
same :class:`ImageDataset` as an ``.npz`` (``uint8`` images, the training split's statistics
unless ``mean`` / ``std`` are given).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from natsray.datasets.arrays import ArrayHeader, inspect_members, pixels_nchw
from natsray.datasets.image_dataset import ImageDataset, ImageSplit
from natsray.datasets.pixels import resized
from natsray.datasets.user_data import DatasetInfo, user_dataset
from natsray.errors import EvaluatorError, failure_line
from natsray.registry import (
    DATASET_REGISTRY,
    DATASET_TARGETS,
    ComponentError,
    ImportPathError,
    import_object,
    is_dataset_plugin,
)

__all__ = [
    "DATASET_TARGETS",
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "dataset_function",
    "dataset_path",
    "is_dataset_plugin",
    "load_plugin",
]

ENTRY_POINT_GROUP = DATASET_REGISTRY.group
"""Entry-point group in which installed packages register dataset plugins by short name."""
REGISTRY = DATASET_REGISTRY
"""Every dataset name: the built-ins, then entry points; import paths as given."""

_KEYS = ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test")
_EXTRA = ("classes", "mean", "std")
_EXPECTED = (
    "a mapping with x_train, y_train, x_valid, y_valid (optional x_test, y_test, classes, mean, std), "
    "a tuple (x_train, y_train, x_valid, y_valid[, x_test, y_test]) or an object with those attributes"
)


def unknown_dataset(name: str, builtins: tuple[str, ...]) -> str:
    """The one-line reason ``name`` is no dataset: the names a config may give, a did-you-mean."""
    plugins = [p.name for p in REGISTRY.plugins() if p.name not in DATASET_TARGETS]
    names = [*builtins, *plugins]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"{name!r} is not one of {', '.join(names)}{hint}, nor a dataset plugin 'package.module:function' "
        "of your own (docs/training.md)"
    )


def dataset_path(obj: Callable[..., Any]) -> str:
    """The import path ``"module:qualname"`` of a dataset plugin given as a Python object (what
    ``config.yaml`` records and a resumed run imports again).

    Raises:
        ValueError: ``dataset: ...``: not callable, defined in ``__main__`` or inside a function, or
            its path does not lead back to it.
    """
    if not callable(obj):
        raise ValueError(
            f"dataset: expected a built-in name, 'package.module:function' or a callable, "
            f"got {type(obj).__name__}"
        )
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname:
        raise ValueError(
            f"dataset: a {type(obj).__name__} object has no import path: give a function or class "
            "defined in a module of your own"
        )
    if module == "__main__" or "<locals>" in qualname or "<lambda>" in qualname:
        where = "__main__" if module == "__main__" else "a function"
        raise ValueError(
            f"dataset: {qualname} is defined in {where}, so a resumed run cannot import it: define it in "
            "a module of your own and pass it (or set evaluator.dataset: 'module:function')"
        )
    path = f"{module}:{qualname}"
    try:
        found = import_object(path)
    except ImportPathError as exc:
        raise ValueError(f"dataset: {exc}") from None
    if found is not obj:
        raise ValueError(f"dataset: {path} is not the object given (a decorated or reassigned name?)")
    return path


def dataset_function(name: str) -> Callable[..., Any]:
    """The callable a dataset plugin name stands for (imported; an entry point's target).

    Raises:
        EvaluatorError: one line: unknown name, not importable (with the import hints of
            :func:`~natsray.registry.import_object`), not callable.
    """
    try:
        target = REGISTRY.target(name)
        obj = import_object(target)
    except (ComponentError, ImportPathError) as exc:
        raise EvaluatorError(str(exc)) from None
    if not callable(obj):
        where = repr(name) if target == name else f"{name!r} ({target})"
        raise EvaluatorError(f"{where} is a {type(obj).__name__}, not a function or class returning the data")
    return obj


def _as_array(value: Any, key: str, where: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise EvaluatorError(
            f"{where}: {key} is not an array ({type(value).__name__}: {type(exc).__name__})"
        ) from None
    if array.dtype == object:
        raise EvaluatorError(f"{where}: {key} is not an array of numbers ({type(value).__name__})")
    return array


def _parts(result: Any, where: str) -> dict[str, Any]:
    """The returned arrays and extras by key."""
    if isinstance(result, Mapping):
        parts = {str(key): value for key, value in result.items()}
        for key in parts:
            if key not in _KEYS + _EXTRA:
                close = difflib.get_close_matches(key, _KEYS + _EXTRA, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"expected {', '.join(_KEYS + _EXTRA)}"
                raise EvaluatorError(f"{where}: returned key {key!r} ({hint})")
    elif isinstance(result, tuple | list):
        if len(result) not in (4, 6):
            raise EvaluatorError(
                f"{where}: returned a {type(result).__name__} of {len(result)} items; expected {_EXPECTED}"
            )
        parts = dict(zip(_KEYS, result, strict=False))
    elif hasattr(result, "x_train"):
        parts = {
            key: getattr(result, key) for key in _KEYS + _EXTRA if getattr(result, key, None) is not None
        }
    else:
        raise EvaluatorError(f"{where}: returned {type(result).__name__}; expected {_EXPECTED}")
    parts = {key: value for key, value in parts.items() if value is not None}
    missing = [key for key in _KEYS[:4] if key not in parts]
    if ("x_test" in parts) != ("y_test" in parts):
        missing.append("y_test" if "x_test" in parts else "x_test")
    if missing:
        has = ", ".join(sorted(parts)) or "nothing"
        raise EvaluatorError(f"{where}: returned no {missing[0]} (expected {_EXPECTED}; it returned {has})")
    return parts


def _channel_values(value: Any, key: str, where: str, channels: int) -> tuple[float, float, float]:
    """``mean`` / ``std``: one value per channel (or one for all), finite, in 0..1 units."""
    values = np.asarray(value, dtype=float).reshape(-1) if not isinstance(value, str) else np.array([])
    if len(values) not in (1, channels, 3) or not np.isfinite(values).all():
        raise EvaluatorError(
            f"{where}: {key} is {value!r}; expected {channels} finite numbers (one per channel)"
        )
    if key == "std" and not (values > 0).all():
        raise EvaluatorError(f"{where}: std is {value!r}; expected values > 0")
    if values.max() > 1.5 and key == "mean":
        raise EvaluatorError(f"{where}: mean is {value!r}; expected 0..1 units (pixel values / 255)")
    full = np.resize(values, 3)
    return (float(full[0]), float(full[1]), float(full[2]))


def load_plugin(name: str, params: Mapping[str, Any] | None, image_size: int | None) -> ImageDataset:
    """Call the dataset plugin ``name`` with ``params`` as keyword arguments and check what it returns.

    Raises:
        EvaluatorError: one line, ``dataset NAME: ...``: not importable, raised (its exception's first
            line and where in the user's code), or returned something malformed (naming the array).
    """
    function = dataset_function(name)
    where = f"dataset {name}"
    try:
        result = function(**dict(params or {}))
    except Exception as exc:
        raise EvaluatorError(f"{where} raised {failure_line(exc)}") from None
    parts = _parts(result, where)
    arrays = {key: _as_array(value, key, where) for key, value in parts.items() if key in _KEYS}
    headers = {key: ArrayHeader(array.shape, array.dtype) for key, array in arrays.items()}
    checked = inspect_members(
        headers, lambda splits: {split: arrays[f"y_{split}"] for split in splits}, where, image_size
    )
    splits = {}
    for split, layout in checked.layouts.items():
        images = resized(pixels_nchw(arrays[f"x_{split}"], layout, f"x_{split}", where), checked.image_size)
        splits[split] = ImageSplit(torch.from_numpy(images), torch.from_numpy(checked.labels[split]))
    classes = tuple(str(i) for i in range(checked.num_classes))
    if "classes" in parts:
        given = parts["classes"]
        if isinstance(given, str) or not hasattr(given, "__len__") or len(given) != checked.num_classes:
            count = len(given) if hasattr(given, "__len__") and not isinstance(given, str) else given
            raise EvaluatorError(
                f"{where}: classes has {count!r} names; expected {checked.num_classes} "
                "(one per class of y_train)"
            )
        classes = tuple(str(c) for c in given)
    info = DatasetInfo(
        name=name,
        path=None,
        num_classes=checked.num_classes,
        channels=checked.channels,
        image_size=checked.image_size,
        sizes=checked.sizes,
        classes=classes,
    )
    source = f"x_{'/x_'.join(checked.layouts)} returned by {name}"
    data = user_dataset(name, splits, info, source, splits["train"].images.numpy())
    stats = {
        key: _channel_values(parts[key], key, where, checked.channels)
        for key in ("mean", "std")
        if key in parts
    }
    if stats:
        from dataclasses import replace

        data = replace(data, **stats)
    return data
