"""Building blocks shared by the strategies: selection, variation, population (de)serialisation.

Pure functions: every random choice comes from the ``rng`` argument. Fitness tuples are
MAXIMISED, as everywhere in :mod:`natsray.strategies`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.search_space.operators import CROSSOVERS, MUTATIONS, crossover, mutate

__all__ = [
    "Member",
    "check_crossover",
    "check_mutation",
    "crowding_distance",
    "dominates",
    "members_from_json",
    "members_to_json",
    "non_dominated_sort",
    "rank_and_crowding",
    "tournament",
    "vary",
]

Member = tuple[Candidate, tuple[float, ...]]
"""An evaluated population member: the candidate and its (successful) fitness."""


def members_to_json(members: Sequence[Member]) -> list[list[Any]]:
    """JSON-able form of population members."""
    return [[candidate.to_dict(), list(fitness)] for candidate, fitness in members]


def members_from_json(data: Sequence[Sequence[Any]]) -> list[Member]:
    """Inverse of :func:`members_to_json`."""
    return [(Candidate.from_dict(candidate), tuple(float(v) for v in fitness)) for candidate, fitness in data]


def tournament(keys: Sequence[Any], rng: random.Random, size: int, *, replace: bool = True) -> int:
    """Index of the best of ``size`` members drawn uniformly from ``keys`` (larger key wins).

    Args:
        keys: One comparable key per member (e.g. its fitness tuple).
        rng: The random source.
        size: Members drawn.
        replace: Draw with replacement (a member may be drawn twice), as NATS-Bench's REA
            does, or without (``size`` must then be at most ``len(keys)``).

    Returns:
        The index of the winner; on a tie the member drawn first wins.
    """
    if not keys:
        raise ValueError("tournament: the population is empty")
    indices = range(len(keys))
    if not replace:
        return max(rng.sample(indices, size), key=lambda index: keys[index])
    choice = rng.choice
    best = choice(indices)
    best_key = keys[best]
    for _ in range(size - 1):
        index = choice(indices)
        if keys[index] > best_key:
            best, best_key = index, keys[index]
    return best


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when ``a`` is at least as good as ``b`` everywhere and better somewhere (maximising)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def non_dominated_sort(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Deb et al.'s fast non-dominated sort.

    Returns:
        The fronts as lists of indices into ``points``: front 0 is the non-dominated set,
        front k is non-dominated once fronts 0..k-1 are removed. Indices within a front are
        ascending.
    """
    dominated_by: list[list[int]] = [[] for _ in points]
    counts = [0] * len(points)
    for i, p in enumerate(points):
        for j in range(i + 1, len(points)):
            if dominates(p, points[j]):
                dominated_by[i].append(j)
                counts[j] += 1
            elif dominates(points[j], p):
                dominated_by[j].append(i)
                counts[i] += 1
    fronts = []
    front = [i for i, count in enumerate(counts) if count == 0]
    while front:
        fronts.append(front)
        following = []
        for i in front:
            for j in dominated_by[i]:
                counts[j] -= 1
                if counts[j] == 0:
                    following.append(j)
        front = sorted(following)
    return fronts


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """Deb et al.'s crowding distance of each point of ONE front.

    Per objective, the two extreme points get ``inf`` and every other point adds the gap
    between its two neighbours in that objective, divided by the objective's FINITE range
    (the largest minus the smallest finite value; an objective without a positive finite range
    adds no finite gap). A point next to an infinite value (a proxy's ``-inf``) is a boundary
    point: its gap is infinite, so it gets ``inf``; two equal neighbours, infinite ones included,
    add 0 (as Optuna's NSGA-II does). The result never holds NaN. Ties in an objective are
    ordered by index, so the result is deterministic.

    Raises:
        ValueError: a point holds NaN (no order exists; :func:`natsray.records.fitness_of` gives
            None for such a result, so strategies never see one).
    """
    distance = [0.0] * len(points)
    if not points:
        return distance
    if any(math.isnan(v) for point in points for v in point):
        raise ValueError("crowding_distance: a fitness holds NaN, which has no order")
    for m in range(len(points[0])):
        order = sorted(range(len(points)), key=lambda i: points[i][m])
        values = [points[i][m] for i in order]
        distance[order[0]] = distance[order[-1]] = math.inf
        finite = [v for v in values if math.isfinite(v)]
        span = finite[-1] - finite[0] if finite else 0.0
        for k in range(1, len(order) - 1):
            low, high = values[k - 1], values[k + 1]
            if low == high:
                continue
            if math.isinf(low) or math.isinf(high):
                distance[order[k]] = math.inf
            elif span > 0:
                distance[order[k]] += (high - low) / span
    return distance


def rank_and_crowding(points: Sequence[Sequence[float]]) -> tuple[list[int], list[float]]:
    """Front rank (0 = non-dominated) and crowding distance within its front, per point."""
    ranks = [0] * len(points)
    crowding = [0.0] * len(points)
    for rank, front in enumerate(non_dominated_sort(points)):
        for i, distance in zip(front, crowding_distance([points[i] for i in front]), strict=True):
            ranks[i] = rank
            crowding[i] = distance
    return ranks, crowding


def check_mutation(kind: str, rate: float) -> None:
    """Validate a strategy's ``mutation`` / ``mutation_rate`` config fields.

    Raises:
        ValueError: ``"field: must be ..., got ..."``.
    """
    if kind not in MUTATIONS:
        raise ValueError(f"mutation: must be one of {', '.join(MUTATIONS)}, got {kind!r}")
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"mutation_rate: must be in (0, 1], got {rate!r}")


def check_crossover(kind: str, probability: float) -> None:
    """Validate a strategy's ``crossover`` / ``crossover_prob`` config fields.

    Raises:
        ValueError: ``"field: must be ..., got ..."``.
    """
    if kind not in CROSSOVERS:
        raise ValueError(f"crossover: must be one of {', '.join(CROSSOVERS)}, got {kind!r}")
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"crossover_prob: must be in [0, 1], got {probability!r}")


def vary(
    parents: Sequence[Arch],
    rng: random.Random,
    *,
    crossover_kind: str,
    mutation_kind: str,
    mutation_rate: float,
) -> Arch:
    """A child: the crossover of ``parents`` (the copy of the only parent if just one), then mutated."""
    child = parents[0] if len(parents) == 1 else crossover(parents, rng, crossover_kind)
    return mutate(child, rng, mutation_kind, mutation_rate)
