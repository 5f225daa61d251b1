"""Typed dataclasses from YAML data: each value checked and converted by its field's type hint.

Supported hints: ``int``, ``float`` (ints accepted), ``str``, ``bool``, ``X | None``,
``Literal[...]``, ``tuple[X, ...]`` (a YAML list, or one value promoted to a 1-tuple),
``dict[str, Any]`` and nested dataclasses. Unknown keys get a did-you-mean; a
``__post_init__`` ``ValueError("field: ...")`` is re-raised under its full YAML path.
Every error is a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["ConfigError", "describe_value", "parse_dataclass"]

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A bad config. Its message is one line: ``[file: ][yaml.path: ]what was expected``.

    Attributes:
        path: Dotted YAML path of the offending value (``""`` for the whole file).
        source: The config file (or other origin) it came from, if known.
    """

    def __init__(self, message: str, *, path: str = "", source: str | None = None) -> None:
        self.message = message
        self.path = path
        self.source = source
        super().__init__(": ".join(part for part in (source, path, message) if part))

    def with_source(self, source: str | None) -> ConfigError:
        """The same error, prefixed with ``source``."""
        return ConfigError(self.message, path=self.path, source=source)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def describe_value(value: Any) -> str:
    """A short phrase for a YAML value in an error message (``null``, ``a mapping``, ``'two'``)."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def not_one_of(value: Any, choices: Sequence[Any]) -> str:
    """``'cifar-10' is not one of cifar10, cifar100 (did you mean 'cifar10'?)``: a value outside an
    enumeration, with the closest choice when one is close."""
    names = [str(choice) for choice in choices]
    close = difflib.get_close_matches(value, names, n=1) if isinstance(value, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{describe_value(value)} is not one of {', '.join(names)}{hint}"


def _expected(hint: Any) -> str:
    """Human name of a type hint, for error messages."""
    origin = typing.get_origin(hint) or hint
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    if origin in names:
        return names[origin]
    if origin in (tuple, list):
        return "a list"
    return "a mapping"


def _number(value: Any, path: str, *, integer: bool) -> int | float:
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)  # PyYAML reads exponent forms such as 1e4 as strings
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"expected {'an integer' if integer else 'a number'}, got {describe_value(value)}", path=path
        )
    if not integer:
        return float(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"expected an integer, got {value!r}", path=path)
        return int(value)
    return value


def _convert(hint: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the type hint ``hint`` and convert it (lists to tuples, ints to floats)."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint) or hint
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"expected {_expected(hint)}, got null", path=path)
        options = sorted((arg for arg in args if arg is not type(None)), key=lambda arg: arg is str)
        if len(options) == 1:
            return _convert(options[0], value, path)
        for option in options:
            try:
                return _convert(option, value, path)
            except ConfigError:
                continue
        raise ConfigError(f"expected {_expected(hint)}, got {describe_value(value)}", path=path)
    if origin is Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(choice, str) and type(value) is int and str(value) == choice:
                return choice
        raise ConfigError(not_one_of(value, args), path=path)
    if origin in (tuple, list):
        items = list(value) if isinstance(value, list | tuple) else [value]  # a scalar is a 1-item list
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ConfigError(f"expected a list of {len(args)} items, got {len(items)}", path=path)
            return tuple(
                _convert(arg, item, f"{path}[{i}]")
                for i, (arg, item) in enumerate(zip(args, items, strict=True))
            )
        item_hint = args[0] if args else Any
        converted = [_convert(item_hint, item, f"{path}[{i}]") for i, item in enumerate(items)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {describe_value(value)}", path=path)
        key_hint, value_hint = args or (Any, Any)
        return {
            _convert(key_hint, key, _join(path, str(key))): _convert(value_hint, item, _join(path, str(key)))
            for key, item in value.items()
        }
    if dataclasses.is_dataclass(hint):
        return parse_dataclass(hint, value, path)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {describe_value(value)}", path=path)
    if hint in (int, float):
        return _number(value, path, integer=hint is int)
    if hint is str:
        if isinstance(value, str):
            return value
        if type(value) is int:  # e.g. hp: 12
            return str(value)
        raise ConfigError(f"expected a string, got {describe_value(value)}", path=path)
    raise TypeError(f"{path}: config field type {hint!r} is not supported by the config parser")


def _post_init_error(exc: Exception, path: str, names: Sequence[str]) -> ConfigError:
    """Re-raise a ``__post_init__`` error (``"field: msg"`` or ``"msg"``) under its full YAML path."""
    message = (str(exc).splitlines() or [type(exc).__name__])[0]
    name, sep, rest = message.partition(": ")
    if sep and name in names:
        return ConfigError(rest, path=_join(path, name))
    return ConfigError(message, path=path)


def parse_dataclass(
    cls: type, data: Any, path: str = "", *, exclude: Sequence[str] = (), also: Sequence[str] = ()
) -> Any:
    """Build dataclass ``cls`` from a YAML mapping, checking every value against its type hint.

    Args:
        cls: The (frozen) dataclass to build.
        data: The parsed YAML mapping.
        path: Dotted YAML path of ``data``, used in error messages.
        exclude: Init fields that may not be given (they keep their defaults).
        also: Keys handled elsewhere (``callbacks``, ``sweep``), offered by the did-you-mean too.

    Raises:
        ConfigError: unknown key (with a did-you-mean), missing required field, wrong type,
            bad ``Literal`` value, or a ``__post_init__`` ValueError, under its YAML path.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in exclude}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of {', '.join(fields)}, got {describe_value(data)}", path=path)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), [*fields, *also], n=1)
            if close:
                hint = f"did you mean {close[0]!r}?"
            elif fields:
                hint = f"expected one of {', '.join(fields)}"
            else:
                hint = "this section takes no other keys"
            raise ConfigError(f"unknown key ({hint})", path=_join(path, str(key)))
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, spec in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], _join(path, name))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError("missing required field", path=_join(path, name))
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise _post_init_error(exc, path, list(fields)) from None


# ----------------------------------------------------------------------------- the experiment
