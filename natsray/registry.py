"""Components chosen by name in YAML, imported only when chosen (a table run never imports torch)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

__all__ = ["load_class"]


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
