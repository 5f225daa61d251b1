"""Configs as plain data: the dicts, lists and scalars that YAML and JSON write."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["plain_data"]


def plain_data(value: Any) -> Any:
    """``value`` as plain dicts and lists, recursively (the containers copied, the scalars not).

    A dataclass instance becomes a dict of its ``init`` fields, a mapping a dict with ``str`` keys, a list or
    tuple a list, and any other object with a ``to_yaml()`` method what that method returns (made plain in
    turn); anything else is returned as it is.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, Mapping):
        return {str(key): plain_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(item) for item in value]
    to_yaml = getattr(value, "to_yaml", None)
    return plain_data(to_yaml()) if callable(to_yaml) else value
