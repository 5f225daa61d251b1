"""The geometry of the NATS-Bench TSS cell: its ops, nodes and edges, and the dense cell code.

A cell is a DAG on 4 nodes; each of its 6 edges ``to <- from`` carries one of 5 ops. A cell's
*code* is the base-5 number whose digits are its op indices, edge 1<-0 most significant
(``0..15624``; natsray's own id, not the NATS-Bench index).
"""

from __future__ import annotations

__all__ = ["EDGES", "NUM_ARCHS", "NUM_EDGES", "NUM_NODES", "OPS", "OP_INDEX", "code_of", "indices_of"]

OPS: tuple[str, ...] = ("none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "skip_connect")
"""The five candidate operations, in NATS-Bench / archai order."""

NUM_NODES = 4
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""Edges as ``(to, from)`` in NATS string order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2."""

NUM_EDGES = len(EDGES)
NUM_ARCHS = len(OPS) ** NUM_EDGES
OP_INDEX = {op: i for i, op in enumerate(OPS)}


def code_of(indices: tuple[int, ...]) -> int:
    """The code of a cell given its op indices (into :data:`OPS`), in :data:`EDGES` order."""
    code = 0
    for index in indices:
        code = code * len(OPS) + index
    return code


def indices_of(code: int) -> tuple[int, ...]:
    """Inverse of :func:`code_of`."""
    digits = []
    for _ in range(NUM_EDGES):
        code, digit = divmod(code, len(OPS))
        digits.append(digit)
    return tuple(reversed(digits))
