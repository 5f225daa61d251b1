"""Canonical form: one representative per class of cells that compute the same function.

The rule is NATS-Bench's own (``get_unique_str`` = xautodl ``to_unique_str(consider_zero=True)``),
reimplemented here in pure Python. Each node's value is written as an expression, node 0 as
``0``; an edge ``j -> i`` with op ``o`` contributes a term:

- ``#`` (zero) if ``o`` is ``none`` or node ``j`` is exactly ``#`` (ops of zero are zero);
- node ``j``'s expression itself if ``o`` is ``skip_connect``;
- ``(<node j>)@o`` otherwise.

Node ``i`` is its terms sorted as strings and joined by ``+`` (sums commute), and the cell's
key (:func:`unique_str`) is node 3's expression. Node labels never appear, so relabelling
nodes 1 and 2 does not change it, and edges that do not reach the output drop out. The key
splits the 15,625 cells into 6,466 classes, equal to the ``UniqueString`` partition of the
NATS-Bench tables.

The rule is sound but conservative: cells with one key compute the same function (under
NATS' convention that any op of zero is zero), but some cells with different keys do too,
because ``#`` terms are kept in sums (``x + 0`` differs from ``x``) and a node whose inputs
are all zero is ``#+#``, not ``#``. ``tests/test_canonical.py`` checks both facts numerically.

:func:`canonical_code` maps a cell code to the smallest code with the same key (one table of
15,625 ints, built once in ~0.3 s); :func:`canonical` is the same on :class:`~.arch.Arch`
values, returning the member of the key's class with the smallest :attr:`Arch.code`
(``none`` = 0 is the smallest op digit, so every edge whose op does not change the key is
``none`` in the representative).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Protocol, TypeVar

import numpy as np

from natsray.search_space.cell import NUM_EDGES, NUM_NODES, OPS

__all__ = ["canonical", "canonical_code", "canonical_codes", "is_canonical", "unique_str", "unique_str_of"]

_ZERO = "#"


class _Cell(Protocol):
    ops: tuple[str, ...]

    @property
    def code(self) -> int: ...


_A = TypeVar("_A", bound=Any)


def unique_str_of(ops: tuple[str, ...]) -> str:
    """The NATS-Bench isomorphism key of the cell with these edge ops (``get_unique_str``)."""
    nodes = ["0"]
    edge = 0
    for _to in range(1, NUM_NODES):
        terms = []
        for source in nodes:
            op = ops[edge]
            edge += 1
            if op == "none" or source == _ZERO:
                terms.append(_ZERO)
            elif op == "skip_connect":
                terms.append(source)
            else:
                terms.append(f"({source})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[-1]


@functools.cache
def canonical_codes() -> np.ndarray:
    """``table[code]`` = the smallest code with the same key, for all 15,625 codes (read-only)."""
    first: dict[str, int] = {}
    table = np.empty(len(OPS) ** NUM_EDGES, dtype=np.int64)
    for code, ops in enumerate(itertools.product(OPS, repeat=NUM_EDGES)):  # code order
        table[code] = first.setdefault(unique_str_of(ops), code)
    table.flags.writeable = False
    return table


@functools.cache
def _canonical_list() -> list[int]:
    return canonical_codes().tolist()


def canonical_code(code: int) -> int:
    """The code of the representative of ``code``'s class (O(1) after the first call)."""
    return _canonical_list()[code]


def unique_str(arch: _Cell) -> str:
    """The NATS-Bench isomorphism key of ``arch`` (equal to NATS ``get_unique_str``)."""
    return unique_str_of(arch.ops)


def canonical(arch: _A) -> _A:
    """The representative of ``arch``'s class: the smallest-code cell with its :func:`unique_str`."""
    return type(arch).from_code(canonical_code(arch.code))


def is_canonical(arch: _Cell) -> bool:
    """Whether ``arch`` is its class's representative."""
    return canonical_code(arch.code) == arch.code
