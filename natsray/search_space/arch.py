"""The cell value type of the NATS-Bench topology search space (TSS, the NAS-Bench-201 cell).

:class:`Arch` is the immutable value type for one cell (geometry in :mod:`.cell`); it needs no
benchmark. ``Arch.from_code`` returns one interned object per cell, so hot loops that move
cells by code allocate nothing: the first call that needs one builds all 15,625 at once (about 8 ms,
a few MB), and the first :meth:`Arch.to_str` builds every arch string likewise, so a search never pays
a cell's first meeting one cell at a time.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product

from natsray.search_space.canonical import canonical_code, unique_str_of
from natsray.search_space.cell import (
    EDGES,
    NUM_ARCHS,
    NUM_EDGES,
    NUM_NODES,
    OP_INDEX,
    OPS,
    code_of,
    indices_of,
)

__all__ = ["EDGES", "NUM_ARCHS", "NUM_EDGES", "NUM_NODES", "OPS", "Arch", "all_archs"]


@dataclass(frozen=True, slots=True, eq=True)
class Arch:
    """One NATS-TSS cell: the op on each of the 6 edges, in :data:`EDGES` order.

    ``Arch.code`` is natsray's own dense integer id (base-5 digits of the op indices,
    edge 1<-0 most significant). It is NOT the NATS-Bench index, whose order is a
    shuffle stored in the benchmark archive's meta file.
    """

    ops: tuple[str, ...]
    code: int = field(init=False, repr=False, compare=False)
    """natsray's dense id in ``0..15624`` (not the NATS-Bench index); read-only, like ``ops``."""

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != NUM_EDGES:
            raise ValueError(f"Arch needs {NUM_EDGES} ops, got {len(self.ops)}: {self.ops!r}")
        for op in self.ops:
            if op not in OP_INDEX:
                raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")
        object.__setattr__(self, "code", code_of(tuple(OP_INDEX[op] for op in self.ops)))

    def __hash__(self) -> int:
        return self.code

    def __reduce__(self) -> tuple[object, tuple[int]]:
        """Pickled as its code; unpickling returns the interned cell (a module-level function,
        so pickle and cloudpickle store it by reference)."""
        return (arch_from_code, (self.code,))

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
                if op not in OP_INDEX:
                    raise ValueError(
                        f"unknown op {op!r} in token {token!r}; expected one of {', '.join(OPS)}"
                    )
                ops.append(op)
        return cls(tuple(ops))

    @classmethod
    def from_code(cls, code: int) -> Arch:
        """Inverse of :attr:`code` (the same interned object for the same code)."""
        if not isinstance(code, int) or not 0 <= code < NUM_ARCHS:
            raise ValueError(f"arch code must be an int in 0..{NUM_ARCHS - 1}, got {code!r}")
        arch = _INTERNED[code]
        if arch is None:
            _intern_all()
            arch = _INTERNED[code]
        return arch  # type: ignore[return-value]

    @classmethod
    def from_indices(cls, indices: Sequence[int]) -> Arch:
        """Build from op indices into :data:`OPS`."""
        return cls(tuple(OPS[i] for i in indices))

    @property
    def op_indices(self) -> tuple[int, ...]:
        """Index into :data:`OPS` of each edge's op."""
        return indices_of(self.code)

    def to_str(self) -> str:
        """The exact NATS-Bench arch string (computed once per cell)."""
        text = _STRINGS[self.code]
        if text is None:
            _STRINGS[:] = _all_strings()
            text = _STRINGS[self.code]
        return text  # type: ignore[return-value]

    def canonical(self) -> Arch:
        """The representative of the cells computing the same function (see :mod:`.canonical`)."""
        return Arch.from_code(canonical_code(self.code))

    def unique_str(self) -> str:
        """The NATS-Bench isomorphism key (``get_unique_str``; see :mod:`.canonical`)."""
        return unique_str_of(self.ops)

    def __str__(self) -> str:
        return self.to_str()


_INTERNED: list[Arch | None] = [None] * NUM_ARCHS
_STRINGS: list[str | None] = [None] * NUM_ARCHS


def _all_strings() -> list[str]:
    """Every cell's arch string, in code order: each node's group (``|op~0|op~1|``) is built once per
    combination of its edges' ops and the groups are joined (1.6 ms for all cells; formatting each
    cell's string from its six ops took 12 ms)."""
    groups: list[list[str]] = []
    for to_node in range(1, NUM_NODES):  # a node's edges are consecutive in EDGES order
        groups.append(
            [
                "|" + "|".join(f"{op}~{j}" for j, op in enumerate(ops)) + "|"
                for ops in product(OPS, repeat=to_node)
            ]
        )
    return ["+".join(parts) for parts in product(*groups)]


def _intern_all() -> None:
    """Build every cell's interned object, in code order (``product`` varies the last edge fastest, as
    the code's least significant digit). The ops were checked by construction, so the dataclass's
    validation is skipped, and the slots are set through their descriptors (``object.__setattr__``
    took 4 ms more). The cyclic garbage collector is paused meanwhile: the 31,250 new objects (cells
    and their op tuples) would start about 45 collections, each re-examining every young object, which
    took 9 of 14 ms in a process that had imported the engine (development machine, 2026-12-04)."""
    new = object.__new__
    set_ops, set_code = Arch.ops.__set__, Arch.code.__set__  # type: ignore[attr-defined]  # the slots
    collecting = gc.isenabled()
    gc.disable()
    try:
        for code, ops in enumerate(product(OPS, repeat=NUM_EDGES)):
            arch = new(Arch)
            set_ops(arch, ops)
            set_code(arch, code)
            _INTERNED[code] = arch
    finally:
        if collecting:
            gc.enable()


def arch_from_code(code: int) -> Arch:
    """:meth:`Arch.from_code` as a plain function (what pickled cells are rebuilt with)."""
    return Arch.from_code(code)


def all_archs() -> Iterator[Arch]:
    """Every cell of the space, in :attr:`Arch.code` order."""
    for code in range(NUM_ARCHS):
        yield Arch.from_code(code)
