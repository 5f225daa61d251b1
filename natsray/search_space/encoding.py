"""Fixed-length vector encodings of cells, for predictors and distances.

- ``onehot`` (30): for each edge in :data:`EDGES` order, a one-hot over :data:`OPS`. Injective.
- ``archai`` (24): archai's ``NatsbenchTssSearchSpace.encode``: 4 dims per edge, ``none`` =
  ``[0,0,0,0]``, ``avg_pool_3x3`` = ``[1,0,0,0]``, ``nor_conv_1x1`` = ``[0,1,0,0]``,
  ``nor_conv_3x3`` = ``[0,0,1,0]``, ``skip_connect`` = ``[0,0,0,1]``. Injective.
- ``path`` (155): the BANANAS path encoding exactly as naszilla's
  ``nas_bench_201/cell_201.py`` ``encode_paths`` computes it. The cell has 4 input->output
  paths, as edge lists ``[3<-0]``, ``[1<-0, 3<-1]``, ``[2<-0, 3<-2]``, ``[1<-0, 2<-1, 3<-2]``;
  each sets one bit: a length-1 path with ops ``(a,)`` sets bit ``a``, a length-2 path
  ``(a, b)`` bit ``5 + a + 5b``, the length-3 path ``(a, b, c)`` bit ``30 + a + 5b + 25c``,
  with op digits in naszilla's order ``avg_pool_3x3, nor_conv_1x1, nor_conv_3x3, none,
  skip_connect`` (0..4). As in naszilla, paths through ``none`` are encoded like any other
  and the two length-2 paths share one block of 25 bits, so 3 or 4 bits are set. Because
  paths through ``none`` are kept, this exact encoding is injective over the 15,625 cells
  (``tests/test_encoding.py`` checks it): the length-3 path fixes edges 1<-0, 2<-1, 3<-2, and
  with those known the unordered pair of length-2 bits fixes 2<-0 and 3<-1. (Variants that
  drop paths through ``none`` are not injective; naszilla's ``encode_paths`` does not drop them.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from natsray.search_space.arch import NUM_ARCHS, NUM_EDGES, OPS, Arch

__all__ = ["ENCODINGS", "ENCODING_DIMS", "encode", "encode_all", "encode_many"]

_ARCHAI_CODE = {
    "none": (0, 0, 0, 0),
    "avg_pool_3x3": (1, 0, 0, 0),
    "nor_conv_1x1": (0, 1, 0, 0),
    "nor_conv_3x3": (0, 0, 1, 0),
    "skip_connect": (0, 0, 0, 1),
}
_NASZILLA_OPS = ("avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect")
_NASZILLA_DIGIT = {op: i for i, op in enumerate(_NASZILLA_OPS)}
_PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))
"""The input->output paths as edge positions in :data:`EDGES` order (naszilla's blueprints)."""
_PATH_OFFSET = {1: 0, 2: len(OPS), 3: len(OPS) + len(OPS) ** 2}


def _onehot(arch: Arch) -> np.ndarray:
    out = np.zeros(NUM_EDGES * len(OPS))
    for edge, index in enumerate(arch.op_indices):
        out[edge * len(OPS) + index] = 1.0
    return out


def _archai(arch: Arch) -> np.ndarray:
    return np.array([bit for op in arch.ops for bit in _ARCHAI_CODE[op]], dtype=float)


def _path(arch: Arch) -> np.ndarray:
    out = np.zeros(sum(len(OPS) ** k for k in range(1, 4)))
    for path in _PATHS:
        index = _PATH_OFFSET[len(path)]
        for position, edge in enumerate(path):
            index += _NASZILLA_DIGIT[arch.ops[edge]] * len(OPS) ** position
        out[index] = 1.0
    return out


ENCODINGS: dict[str, Callable[[Arch], np.ndarray]] = {"onehot": _onehot, "path": _path, "archai": _archai}
"""Encoders by name."""

ENCODING_DIMS: dict[str, int] = {"onehot": 30, "path": 155, "archai": 24}
"""Length of each encoding."""


def encode(arch: Arch, kind: str = "onehot") -> np.ndarray:
    """``arch`` as a 1-D float array of length ``ENCODING_DIMS[kind]`` (0/1 entries).

    Raises:
        ValueError: when ``kind`` is not in :data:`ENCODINGS`.
    """
    if kind not in ENCODINGS:
        raise ValueError(f"encoding {kind!r} is not one of {', '.join(ENCODINGS)}")
    return ENCODINGS[kind](arch)


def encode_many(archs: Iterable[Arch], kind: str = "onehot") -> np.ndarray:
    """Stack the encodings of ``archs`` into a ``(n, ENCODING_DIMS[kind])`` array."""
    if kind not in ENCODINGS:
        raise ValueError(f"encoding {kind!r} is not one of {', '.join(ENCODINGS)}")
    rows = [ENCODINGS[kind](arch) for arch in archs]
    return np.stack(rows) if rows else np.zeros((0, ENCODING_DIMS[kind]))


_ALL: dict[str, np.ndarray] = {}


def encode_all(kind: str = "onehot") -> np.ndarray:
    """The encoding of every cell, ``(15625, ENCODING_DIMS[kind])`` float32, row = :attr:`Arch.code`.

    Computed once per process and shared (2 MB for ``onehot``, 10 MB for ``path``): treat it as
    read-only.

    Raises:
        ValueError: when ``kind`` is not in :data:`ENCODINGS`.
    """
    if kind not in _ALL:
        table = encode_many((Arch.from_code(code) for code in range(NUM_ARCHS)), kind).astype(np.float32)
        table.flags.writeable = False
        _ALL[kind] = table
    return _ALL[kind]
