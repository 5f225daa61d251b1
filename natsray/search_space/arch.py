"""The cell value type of the NATS-Bench topology search space (TSS, the NAS-Bench-201 cell).

A cell is a DAG on 4 nodes; each of its 6 edges ``to <- from`` carries one of 5 ops.
:class:`Arch` is the immutable value type for one cell; it needs no benchmark.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["EDGES", "NUM_ARCHS", "NUM_EDGES", "NUM_NODES", "OPS", "Arch", "all_archs"]

OPS: tuple[str, ...] = ("none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "skip_connect")
"""The five candidate operations, in NATS-Bench / archai order."""

NUM_NODES = 4
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""Edges as ``(to, from)`` in NATS string order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2."""

NUM_EDGES = len(EDGES)
NUM_ARCHS = len(OPS) ** NUM_EDGES
_OP_INDEX = {op: i for i, op in enumerate(OPS)}


@dataclass(frozen=True, slots=True)
class Arch:
    """One NATS-TSS cell: the op on each of the 6 edges, in :data:`EDGES` order.

    ``Arch.code`` is natsray's own dense integer id (base-5 digits of the op indices,
    edge 1<-0 most significant). It is NOT the NATS-Bench index, whose order is a
    shuffle stored in the benchmark archive's meta file.
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != NUM_EDGES:
            raise ValueError(f"Arch needs {NUM_EDGES} ops, got {len(self.ops)}: {self.ops!r}")
        for op in self.ops:
            if op not in _OP_INDEX:
                raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")

    @classmethod
    def from_str(cls, arch_str: str) -> Arch:
        """Parse a NATS arch string such as ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``.

        Raises:
            ValueError: naming the offending token when the string is malformed.
        """
        if not isinstance(arch_str, str):
            raise ValueError(f"arch string must be a str, got {type(arch_str).__name__}")
        nodes = arch_str.strip().split("+")
        if len(nodes) != NUM_NODES - 1:
            raise ValueError(
                f"arch string {arch_str!r} has {len(nodes)} node groups separated by '+', "
                f"expected {NUM_NODES - 1}"
            )
        ops: list[str] = []
        for to_node, group in enumerate(nodes, start=1):
            if not (group.startswith("|") and group.endswith("|") and len(group) > 2):
                raise ValueError(f"node group {group!r} in {arch_str!r} must look like |op~0|...|")
            tokens = group[1:-1].split("|")
            if len(tokens) != to_node:
                raise ValueError(
                    f"node group {group!r} has {len(tokens)} edges, node {to_node} needs {to_node}"
                )
            for from_node, token in enumerate(tokens):
                op, sep, source = token.partition("~")
                if not sep or source != str(from_node):
                    raise ValueError(f"bad edge token {token!r}: expected '<op>~{from_node}'")
                if op not in _OP_INDEX:
                    raise ValueError(
                        f"unknown op {op!r} in token {token!r}; expected one of {', '.join(OPS)}"
                    )
                ops.append(op)
        return cls(tuple(ops))

    @classmethod
    def from_code(cls, code: int) -> Arch:
        """Inverse of :attr:`code`."""
        if not isinstance(code, int) or not 0 <= code < NUM_ARCHS:
            raise ValueError(f"arch code must be an int in 0..{NUM_ARCHS - 1}, got {code!r}")
        digits = []
        for _ in range(NUM_EDGES):
            code, digit = divmod(code, len(OPS))
            digits.append(OPS[digit])
        return cls(tuple(reversed(digits)))

    @classmethod
    def from_indices(cls, indices: Sequence[int]) -> Arch:
        """Build from op indices into :data:`OPS`."""
        return cls(tuple(OPS[i] for i in indices))

    @property
    def op_indices(self) -> tuple[int, ...]:
        """Index into :data:`OPS` of each edge's op."""
        return tuple(_OP_INDEX[op] for op in self.ops)

    @property
    def code(self) -> int:
        """natsray's dense id in ``0..15624`` (not the NATS-Bench index)."""
        code = 0
        for index in self.op_indices:
            code = code * len(OPS) + index
        return code

    def to_str(self) -> str:
        """The exact NATS-Bench arch string."""
        groups = []
        start = 0
        for to_node in range(1, NUM_NODES):
            edges = self.ops[start : start + to_node]
            groups.append("|" + "|".join(f"{op}~{j}" for j, op in enumerate(edges)) + "|")
            start += to_node
        return "+".join(groups)

    def canonical(self) -> Arch:
        """The representative of the cells computing the same function (see :mod:`.canonical`)."""
        from natsray.search_space.canonical import canonical

        return canonical(self)

    def __str__(self) -> str:
        return self.to_str()


def all_archs() -> Iterator[Arch]:
    """Every cell of the space, in :attr:`Arch.code` order."""
    for ops in itertools.product(OPS, repeat=NUM_EDGES):
        yield Arch(ops)
