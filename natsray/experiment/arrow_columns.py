"""Python values -> Arrow arrays and Arrow arrays -> NumPy, for an evaluation journal, without pandas.

``pyarrow.array`` asks on its first call whether pandas is installed, and so imports it (about
0.5-1 s): in every process that builds a table, a sweep's driver and each Ray worker among them.
:func:`column` builds the columns an evaluation record has (integers, floats, strings, lists of
numbers, each with nulls) from their NumPy buffers instead (``pyarrow.Array.from_buffers``, which
imports nothing), and hands any other column to ``pyarrow.array``. Either way the array equals
``pyarrow.array(values, from_pandas=False)``: same type, same values, same nulls (tested against
it in ``tests/test_arrow_columns.py``).

The way back has the same trap: ``to_numpy`` of an array with nulls or of booleans, and a compute
function given a Python scalar, import pandas too. :func:`floats` and :func:`booleans` read a
numeric or boolean column's buffers instead (what a report needs).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["booleans", "column", "floats"]

_NONE = type(None)
_EXACT = 1 << 53
"""Arrow converts an int to a double only when the double holds it exactly (|value| <= 2**53)."""


def column(values: Sequence[Any]) -> pa.Array:
    """``pyarrow.array(values, from_pandas=False)``, built from buffers where the values allow.

    Args:
        values: One column's Python values: ``int``, ``float``, ``str``, ``list`` of ints and
            floats, or ``None`` (null) each; other kinds go to ``pyarrow.array``.

    Returns:
        An array of ``len(values)`` rows: int64, double, string or a list of one of the first two,
        typed as Arrow infers them (ints with floats become doubles; ``NaN`` stays a value).

    Raises:
        pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, OverflowError: as ``pyarrow.array`` does for
            values it cannot convert (a string among numbers, an int beyond int64).
    """
    kinds = set(map(type, values))
    nullable = _NONE in kinds  # no None among the values: no validity bitmap to build, no count
    kinds.discard(_NONE)
    if not kinds:  # empty, or nulls only
        return pa.nulls(len(values))
    if kinds <= {int, float}:
        return _numbers(values, kinds, nullable)
    if kinds == {str}:
        return _strings(values, nullable)
    if kinds == {list}:
        array = _lists(values, nullable)
        if array is not None:
            return array
    return pa.array(values, from_pandas=False)


def _validity(values: Sequence[Any], nullable: bool) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap (bit set = value present) and the null count; None and 0 without nulls
    (at once when the values cannot hold one: not ``nullable``)."""
    if not nullable:
        return None, 0
    count = values.count(None) if isinstance(values, list) else sum(value is None for value in values)
    if not count:
        return None, 0
    present = np.fromiter((value is not None for value in values), dtype=bool, count=len(values))
    return pa.py_buffer(np.packbits(present, bitorder="little")), count


def _numbers(values: Sequence[Any], kinds: set[type], nullable: bool) -> pa.Array:
    validity, nulls = _validity(values, nullable)
    try:
        if float in kinds:
            if int in kinds and any(type(v) is int and not -_EXACT <= v <= _EXACT for v in values):
                raise OverflowError  # Arrow refuses an int that a double does not hold exactly
            data = np.array(values, dtype=np.float64)  # None becomes NaN, masked by the validity
            arrow_type = pa.float64()
        else:
            data = np.array([0 if v is None else v for v in values] if nulls else values, dtype=np.int64)
            arrow_type = pa.int64()
    except OverflowError:  # beyond int64, or not exact as a double: Arrow's own conversion and error
        return pa.array(values, from_pandas=False)
    return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(data)], null_count=nulls)


def _strings(values: Sequence[Any], nullable: bool) -> pa.Array:
    validity, nulls = _validity(values, nullable)
    texts = [value for value in values if value is not None] if nulls else values
    joined = "".join(texts)
    if joined.isascii():  # one byte per character: the lengths are the strings' own
        data = joined.encode("ascii")
        lengths = [0 if v is None else len(v) for v in values] if nulls else list(map(len, values))
    else:
        encoded = [b"" if value is None else value.encode() for value in values]
        data = b"".join(encoded)
        lengths = list(map(len, encoded))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 1 << 31:
        return pa.array(values, from_pandas=False)
    buffers = [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string(), len(values), buffers, null_count=nulls)


def _lists(values: Sequence[Any], nullable: bool) -> pa.Array | None:
    """A list column of numbers (or of empty lists only), or None for one this path does not build
    (nested lists, nulls in lists)."""
    present = [value for value in values if value is not None] if nullable else values
    items = list(chain.from_iterable(present))
    kinds = set(map(type, items))
    if not kinds <= {int, float}:
        return None
    validity, nulls = _validity(values, nullable)
    child = _numbers(items, kinds, False) if kinds else pa.nulls(0)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(
        [0 if value is None else len(value) for value in values] if nulls else list(map(len, values)),
        out=offsets[1:],
    )
    if offsets[-1] >= 1 << 31:
        return None
    return pa.Array.from_buffers(
        pa.list_(child.type),
        len(values),
        [validity, pa.py_buffer(offsets.astype(np.int32))],
        null_count=nulls,
        children=[child],
    )


def floats(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric (or null-typed) column as a float64 array, NaN where null.

    Equals ``pyarrow.compute.fill_null(values.cast(pa.float64()), nan).to_numpy()``.

    Raises:
        pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError: the column is not numeric.
    """
    parts = []
    for chunk in _chunks(values):
        if not len(chunk):
            continue
        if pa.types.is_null(chunk.type):
            parts.append(np.full(len(chunk), np.nan))
            continue
        chunk = chunk.cast(pa.float64())
        data = np.frombuffer(chunk.buffers()[1], dtype=np.float64, count=chunk.offset + len(chunk))
        data = data[chunk.offset :]
        parts.append(np.where(_valid(chunk), data, np.nan) if chunk.null_count else data.copy())
    return np.concatenate(parts) if parts else np.empty(0)


def booleans(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean column as a bool array, False where null.

    Equals ``pyarrow.compute.fill_null(values, False).to_numpy(zero_copy_only=False)``.

    Raises:
        TypeError: the column is not boolean.
    """
    parts = []
    for chunk in _chunks(values):
        if not pa.types.is_boolean(chunk.type):
            raise TypeError(f"booleans: a {chunk.type} column, not bool")
        if not len(chunk):
            continue
        bits = _bits(chunk.buffers()[1], chunk.offset, len(chunk))
        parts.append(bits & _valid(chunk) if chunk.null_count else bits)
    return np.concatenate(parts) if parts else np.empty(0, dtype=bool)


def _chunks(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(values.chunks) if isinstance(values, pa.ChunkedArray) else [values]


def _bits(buffer: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """Bits ``offset .. offset + length`` of an Arrow bitmap (least significant bit first) as bools."""
    bits = np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")
    return bits[offset : offset + length].astype(bool)


def _valid(chunk: pa.Array) -> np.ndarray:
    """Per row, whether it holds a value."""
    bitmap = chunk.buffers()[0]
    if bitmap is None:
        return np.full(len(chunk), chunk.null_count == 0)
    return _bits(bitmap, chunk.offset, len(chunk))
