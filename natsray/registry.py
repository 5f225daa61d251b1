"""Components chosen by name in YAML, imported only when chosen (a table run never imports torch).

Two ways to name a component: a short name from a registry of built-ins (``"regularized_evolution"``),
or an import path ``"package.module:attribute"`` (:func:`import_object`), the convention of
entry points, Ray's ``runtime_env`` and uvicorn.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["ImportPathError", "import_object", "is_import_path", "load_class"]


class ImportPathError(ImportError):
    """An import path that cannot be resolved; the message is one line naming the path and why."""


def is_import_path(name: str) -> bool:
    """Whether ``name`` has the ``"package.module:attribute"`` form."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr)


def import_object(spec: str) -> Any:
    """The object named by ``"package.module:attribute"`` (``attribute`` may be dotted: ``Outer.Inner``).

    Raises:
        ImportPathError: one line: the path is malformed, its module is not found (naming the missing
            module, which may be one the user's module imports), importing it raised (naming the
            exception), or the attribute is missing.
    """
    if not is_import_path(spec):
        raise ImportPathError(f"{spec!r} is not an import path of the form 'package.module:attribute'")
    module_name, _, attr_path = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        own = missing == module_name or module_name.startswith(missing + ".")
        where = "" if own else f" (imported by {module_name!r})"
        raise ImportPathError(f"{spec!r}: no module named {missing!r}{where}") from None
    except Exception as exc:  # the user's module raised while importing
        raise ImportPathError(
            f"{spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ImportPathError(f"{spec!r}: module {module_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, part)
    return obj


def load_class(
    registry: Mapping[str, str], name: str, field: str, error: type[Exception] = ValueError
) -> type:
    """The class registered as ``"module:Class"`` under ``name``.

    Raises:
        error: ``"<field>: '<name>' is not one of ..."`` for an unknown name.
    """
    if name not in registry:
        raise error(f"{field}: {name!r} is not one of {', '.join(registry)}")
    module_name, _, class_name = registry[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
