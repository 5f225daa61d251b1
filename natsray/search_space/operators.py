"""Variation operators on cells: sample, mutate, crossover, neighbours.

Pure functions returning new :class:`Arch` values. Every random choice comes from the
``rng`` argument — a :class:`random.Random` or a :class:`numpy.random.Generator` — so a
run is reproducible from one seed; the global ``random`` / ``np.random`` state is never used.
Operators are registered by name in :data:`MUTATIONS` and :data:`CROSSOVERS` so a YAML config
can name them; call them through :func:`mutate` and :func:`crossover`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np

from natsray.search_space.arch import EDGES, NUM_ARCHS, NUM_EDGES, NUM_NODES, OPS, Arch

__all__ = [
    "CROSSOVERS",
    "MUTATIONS",
    "Rng",
    "crossover",
    "crossover_one_point",
    "crossover_two_point",
    "crossover_uniform",
    "mutate",
    "mutate_edge",
    "mutate_node",
    "mutate_rate",
    "mutation_operator",
    "neighbours",
    "random_sample",
]

Rng: TypeAlias = random.Random | np.random.Generator
"""An explicit random source: ``random.Random`` or ``numpy.random.Generator``."""


_RANGES = tuple(range(n) for n in range(NUM_ARCHS + 1))
_ALL_CODES = _RANGES[NUM_ARCHS]


def _below(rng: Rng, n: int) -> int:
    """A uniform int in ``0..n-1`` from ``rng``.

    For ``random.Random`` this is ``rng.choice(range(n))``: the same single draw as
    ``rng.randrange(n)`` (one ``_randbelow(n)``), with less argument checking.
    """
    if type(rng) is random.Random or isinstance(rng, random.Random):
        return rng.choice(_RANGES[n]) if n <= NUM_ARCHS else rng.randrange(n)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(n))
    raise TypeError(f"rng must be a random.Random or numpy.random.Generator, got {type(rng).__name__}")


def _other_op(rng: Rng, op: str) -> str:
    """A uniformly chosen op different from ``op``."""
    others = [o for o in OPS if o != op]
    return others[_below(rng, len(others))]


_PLACE = tuple(len(OPS) ** (NUM_EDGES - 1 - edge) for edge in range(NUM_EDGES))
"""Weight of each edge's op index in :attr:`Arch.code`."""
_OTHERS = tuple(tuple(j for j in range(len(OPS)) if j != i) for i in range(len(OPS)))
"""For each op index, the other op indices in :data:`OPS` order."""
_EDGE_INDEX = {edge: position for position, edge in enumerate(EDGES)}
_NUM_OPS = len(OPS)


def _with_op(arch: Arch, edge: int, new: int) -> Arch:
    """``arch`` with op index ``new`` on ``edge`` (interned, no re-validation)."""
    code = arch.code
    old = code // _PLACE[edge] % len(OPS)
    return Arch.from_code(code + (new - old) * _PLACE[edge])


def random_sample(rng: Rng) -> Arch:
    """A cell drawn uniformly from all 15,625."""
    if type(rng) is random.Random:  # the hot path of query-mode random search: _below's one draw
        return Arch.from_code(rng.choice(_ALL_CODES))
    return Arch.from_code(_below(rng, NUM_ARCHS))


def neighbours(arch: Arch) -> list[Arch]:
    """The 24 cells differing from ``arch`` on exactly one edge.

    Order: edges in :data:`EDGES` order, and for each edge the other ops in :data:`OPS` order.
    """
    return [_with_op(arch, edge, new) for edge, old in enumerate(arch.op_indices) for new in _OTHERS[old]]


def mutate_edge(arch: Arch, rng: Rng) -> Arch:
    """Change one uniformly chosen edge to a different op: uniform over the 24 neighbours."""
    options = neighbours(arch)
    return options[_below(rng, len(options))]


def mutate_rate(arch: Arch, rng: Rng, rate: float = 1 / NUM_EDGES) -> Arch:
    """Resample each edge independently, with probability ``rate``, to a different op.

    Never returns ``arch`` itself: when no edge was picked, one edge is mutated as in
    :func:`mutate_edge` (so at least one edge always changes).

    Raises:
        ValueError: when ``rate`` is not in ``(0, 1]``.
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"mutation rate must be in (0, 1], got {rate!r}")
    ops = [_other_op(rng, op) if rng.random() < rate else op for op in arch.ops]
    if tuple(ops) == arch.ops:
        return mutate_edge(arch, rng)
    return Arch(tuple(ops))


def mutate_node(arch: Arch, rng: Rng) -> Arch:
    """NATS-Bench's REA mutation: a uniform node (1, 2 or 3), one of its input edges, a different op.

    Unlike :func:`mutate_edge` the edge is not uniform: 1<-0 is picked with probability 1/3,
    each input of node 2 with 1/6, each input of node 3 with 1/9. Use it to reproduce
    NATS-Bench's regularized-evolution numbers (``exps/NATS-algos/regularized_ea.py``).
    """
    if type(rng) is random.Random:  # the hot path of query-mode REA: the same draws as _below's
        choice = rng.choice
        node = 1 + choice(_RANGES[NUM_NODES - 1])
        edge = _EDGE_INDEX[node, choice(_RANGES[node])]
        code = arch.code
        place = _PLACE[edge]
        old = code // place % _NUM_OPS
        return Arch.from_code(code + (choice(_OTHERS[old]) - old) * place)
    node = 1 + _below(rng, NUM_NODES - 1)
    edge = _EDGE_INDEX[node, _below(rng, node)]
    old = arch.code // _PLACE[edge] % len(OPS)
    return _with_op(arch, edge, _OTHERS[old][_below(rng, len(OPS) - 1)])


MUTATIONS: dict[str, Callable[..., Arch]] = {"edge": mutate_edge, "node": mutate_node, "rate": mutate_rate}
"""Mutation operators by config name."""


def mutate(arch: Arch, rng: Rng, kind: str = "edge", rate: float = 1 / NUM_EDGES) -> Arch:
    """Mutate ``arch`` with the operator named ``kind`` (``rate`` is used by ``"rate"`` only).

    Raises:
        ValueError: when ``kind`` is not in :data:`MUTATIONS`.
    """
    if kind == "rate":
        return mutate_rate(arch, rng, rate)
    if kind not in MUTATIONS:
        raise ValueError(f"mutation kind {kind!r} is not one of {', '.join(MUTATIONS)}")
    return MUTATIONS[kind](arch, rng)


def mutation_operator(kind: str, rate: float = 1 / NUM_EDGES) -> Callable[[Arch, Rng], Arch]:
    """The mutation ``kind`` as a function ``(arch, rng) -> Arch`` (``rate`` bound for ``"rate"``).

    Raises:
        ValueError: when ``kind`` is not in :data:`MUTATIONS` or ``rate`` is not in ``(0, 1]``.
    """
    if kind == "rate":
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"mutation rate must be in (0, 1], got {rate!r}")
        return functools.partial(mutate_rate, rate=rate)
    if kind not in MUTATIONS:
        raise ValueError(f"mutation kind {kind!r} is not one of {', '.join(MUTATIONS)}")
    return MUTATIONS[kind]


def _check_parents(parents: Sequence[Arch]) -> None:
    if len(parents) < 2:
        raise ValueError(f"crossover needs at least 2 parents, got {len(parents)}")


def crossover_uniform(parents: Sequence[Arch], rng: Rng) -> Arch:
    """Each edge's op taken from a uniformly chosen parent (any number >= 2 of parents)."""
    _check_parents(parents)
    return Arch(tuple(parents[_below(rng, len(parents))].ops[edge] for edge in range(NUM_EDGES)))


def _segments(parents: Sequence[Arch], rng: Rng, cuts: Sequence[int]) -> Arch:
    """Join the edge segments split at ``cuts``; segment i from parent ``(start + i) % k``.

    ``start`` is uniform, so with 2 parents a random parent gives the prefix and they
    alternate; with k parents consecutive segments always come from different parents.
    """
    start = _below(rng, len(parents))
    bounds = [0, *cuts, NUM_EDGES]
    ops: list[str] = []
    for i in range(len(bounds) - 1):
        ops.extend(parents[(start + i) % len(parents)].ops[bounds[i] : bounds[i + 1]])
    return Arch(tuple(ops))


def crossover_one_point(parents: Sequence[Arch], rng: Rng) -> Arch:
    """A prefix of edges from one parent and the rest from the next (both parts non-empty).

    The cut is uniform over the 5 inner positions of the 6-edge list; see :func:`_segments`
    for which parents give the two parts.
    """
    _check_parents(parents)
    return _segments(parents, rng, [1 + _below(rng, NUM_EDGES - 1)])


def crossover_two_point(parents: Sequence[Arch], rng: Rng) -> Arch:
    """Three non-empty edge segments from parents in turn (with 2 parents: A B A).

    The two cuts are uniform over the 10 pairs of distinct inner positions.
    """
    _check_parents(parents)
    first = 1 + _below(rng, NUM_EDGES - 1)
    second = 1 + _below(rng, NUM_EDGES - 2)
    if second >= first:
        second += 1
    return _segments(parents, rng, sorted((first, second)))


CROSSOVERS: dict[str, Callable[[Sequence[Arch], Rng], Arch]] = {
    "uniform": crossover_uniform,
    "one_point": crossover_one_point,
    "two_point": crossover_two_point,
}
"""Crossover operators by config name."""


def crossover(parents: Sequence[Arch], rng: Rng, kind: str = "uniform") -> Arch:
    """One child of ``parents`` (2 or more) by the crossover named ``kind``.

    The child may equal a parent (e.g. when the parents agree on most edges).

    Raises:
        ValueError: when ``kind`` is unknown or fewer than 2 parents are given.
    """
    if kind not in CROSSOVERS:
        raise ValueError(f"crossover kind {kind!r} is not one of {', '.join(CROSSOVERS)}")
    return CROSSOVERS[kind](parents, rng)
