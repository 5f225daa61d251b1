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

:func:`canonical` returns the member of the key's class with the smallest :attr:`Arch.code`
(``none`` = 0 is the smallest op digit, so every edge whose op does not change the key is
``none`` in the representative).
"""

from __future__ import annotations

import functools

from natsray.search_space.arch import NUM_NODES, Arch, all_archs

__all__ = ["canonical", "is_canonical", "unique_str"]

_ZERO = "#"


def unique_str(arch: Arch) -> str:
    """The NATS-Bench isomorphism key of ``arch`` (equal to NATS ``get_unique_str``)."""
    nodes = ["0"]
    edge = 0
    for _to in range(1, NUM_NODES):
        terms = []
        for source in nodes:
            op = arch.ops[edge]
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
def _representatives() -> dict[str, Arch]:
    """Key -> smallest-code member, over the whole space (built once, ~0.5 s)."""
    table: dict[str, Arch] = {}
    for arch in all_archs():  # code order: the first member seen is the smallest
        table.setdefault(unique_str(arch), arch)
    return table


def canonical(arch: Arch) -> Arch:
    """The representative of ``arch``'s class: the smallest-code cell with its :func:`unique_str`."""
    return _representatives()[unique_str(arch)]


def is_canonical(arch: Arch) -> bool:
    """Whether ``arch`` is its class's representative."""
    return canonical(arch) == arch
