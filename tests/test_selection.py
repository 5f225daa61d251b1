"""Selection building blocks: tournaments, non-dominated sorting, crowding, config checks."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.strategies.nsga2 import survivors
from natsray.strategies.selection import (
    check_crossover,
    check_mutation,
    crowding_distance,
    dominates,
    non_dominated_sort,
    rank_and_crowding,
    tournament,
)

# Hand-made 2-objective set (maximised). Fronts worked out by hand:
#   front 0: a(5,1) b(4,3) c(2,4) d(1,5)      -- nobody beats them
#   front 1: e(3,2) f(2,3) g(1,4)             -- e < b, f < b/c, g < c/d
#   front 2: h(2,2) i(1,1)... i(1,1) < h(2,2) -> h front 2, i front 3
#   duplicate j == e (3,2) shares e's front
POINTS = {
    "a": (5.0, 1.0),
    "b": (4.0, 3.0),
    "c": (2.0, 4.0),
    "d": (1.0, 5.0),
    "e": (3.0, 2.0),
    "f": (2.0, 3.0),
    "g": (1.0, 4.0),
    "h": (2.0, 2.0),
    "i": (1.0, 1.0),
    "j": (3.0, 2.0),
}
NAMES = list(POINTS)


def test_dominates_is_strict_and_maximising() -> None:
    assert dominates((2, 3), (1, 3))
    assert not dominates((1, 3), (2, 3))
    assert not dominates((2, 3), (2, 3))
    assert not dominates((3, 1), (1, 3))


def test_non_dominated_sort_matches_hand_made_fronts() -> None:
    fronts = non_dominated_sort(list(POINTS.values()))
    named = [[NAMES[i] for i in front] for front in fronts]
    assert named == [["a", "b", "c", "d"], ["e", "f", "g", "j"], ["h"], ["i"]]


def test_crowding_distance_hand_computed() -> None:
    # front 0 sorted on obj 0: d(1) c(2) b(4) a(5), range 4; on obj 1: a(1) b(3) c(4) d(5), range 4.
    # b: (5-2)/4 + (4-1)/4 = 1.5 ; c: (4-1)/4 + (5-3)/4 = 1.25 ; a, d extremes: inf
    front = [POINTS[n] for n in "abcd"]
    assert crowding_distance(front) == [math.inf, 1.5, 1.25, math.inf]


def test_crowding_distance_degenerate_objective_adds_nothing() -> None:
    assert crowding_distance([(1.0, 7.0), (2.0, 7.0), (3.0, 7.0)]) == [math.inf, 1.0, math.inf]


def test_rank_and_crowding_per_front() -> None:
    ranks, crowding = rank_and_crowding(list(POINTS.values()))
    assert dict(zip(NAMES, ranks, strict=True)) == {
        "a": 0, "b": 0, "c": 0, "d": 0, "e": 1, "f": 1, "g": 1, "j": 1, "h": 2, "i": 3,
    }  # fmt: skip
    assert crowding[NAMES.index("b")] == 1.5
    assert math.isinf(crowding[NAMES.index("h")])  # alone in its front


def _member(i: int, fitness: tuple[float, ...]) -> tuple[Candidate, tuple[float, ...]]:
    return Candidate(i, Arch.from_code(i)), fitness


def test_survivors_fill_fronts_then_cut_by_crowding() -> None:
    population = [_member(i, POINTS[name]) for i, name in enumerate(NAMES)]
    # 6 survivors: front 0 (a, b, c, d) whole, then 2 of front 1 (e, f, g, j) by crowding.
    # Front 1 on obj 0 (ties by index): g(1) f(2) e(3) j(3) -> g, j extremes; f += (3-1)/2.
    # On obj 1: e(2) j(2) f(3) g(4) -> e, g extremes; f += (4-2)/2. So e, g, j = inf, f = 2:
    # the three infinite ones tie and the earlier two, e and g, survive.
    kept = survivors(population, 6)
    assert [c.id for c, _ in kept] == [0, 1, 2, 3, 4, 6]
    assert survivors(population, 4) == population[:4]
    assert survivors(population, 20) == population


def test_tournament_with_replacement_can_repeat_and_picks_best_of_draw() -> None:
    rng = random.Random(0)
    keys = [3, 9, 1, 7]
    # size == population without replacement always returns the global best
    assert {tournament(keys, rng, 4, replace=False) for _ in range(50)} == {1}
    # size 1 is a uniform draw
    counts = Counter(tournament(keys, rng, 1) for _ in range(4000))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 850
    # with replacement, size 4 misses the best with probability (3/4)^4 ~ 0.32
    wins = Counter(tournament(keys, rng, 4) for _ in range(4000))
    assert 0.62 < wins[1] / 4000 < 0.74
    assert wins[2] / 4000 < 0.02  # the worst wins only when drawn 4 times: (1/4)^4 ~ 0.004


def test_tournament_ties_go_to_first_drawn() -> None:
    rng = random.Random(1)
    keys = [(1.0,), (1.0,), (1.0,)]
    state = rng.getstate()
    first = rng.sample(range(3), 3)[0]
    rng.setstate(state)
    assert tournament(keys, rng, 3, replace=False) == first


def test_config_checks_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^mutation: must be one of edge, .*, got 'flip'$"):
        check_mutation("flip", 0.5)
    with pytest.raises(ValueError, match=r"^mutation_rate: must be in \(0, 1\], got 0.0$"):
        check_mutation("rate", 0.0)
    with pytest.raises(ValueError, match=r"^crossover: must be one of uniform, one_point, two_point"):
        check_crossover("blend", 0.5)
    with pytest.raises(ValueError, match=r"^crossover_prob: must be in \[0, 1\], got 1.5$"):
        check_crossover("uniform", 1.5)


# ---- infinite objective values (naswot is -inf for a cell whose output ignores its input) ----


def _random_front(rng: random.Random) -> list[tuple[float, ...]]:
    """A random non-dominated set of 2-3 objectives, some values -inf (or +inf)."""
    objectives = rng.choice((2, 3))
    points = []
    for _ in range(rng.randint(3, 14)):
        point = [rng.choice((-math.inf, -math.inf, math.inf)) if rng.random() < 0.2 else rng.random()]
        point += [rng.random() for _ in range(objectives - 1)]
        points.append(tuple(point))
    front = non_dominated_sort(points)[0]
    return [points[i] for i in front]


def _extremes(points: list[tuple[float, ...]], distance: list[float]) -> None:
    """Per objective, a point with the smallest and one with the largest value have infinite distance."""
    for m in range(len(points[0])):
        values = [p[m] for p in points]
        for extreme in (min(values), max(values)):
            assert any(v == extreme and math.isinf(d) for v, d in zip(values, distance, strict=True))


def test_crowding_distance_with_infinite_values_uses_the_finite_range() -> None:
    # objective 0 sorted: -inf(a) 0(b) 1(c) 3(d) ; finite range 3. b is next to -inf: a boundary point.
    # objective 1 decreasing (a front): a 3, b 2, c 1, d 0; range 3.
    points = [(-math.inf, 3.0), (0.0, 2.0), (1.0, 1.0), (3.0, 0.0)]
    distance = crowding_distance(points)
    assert distance[0] == distance[1] == distance[3] == math.inf
    assert distance[2] == pytest.approx((3 - 0) / 3 + (2 - 0) / 3)
    # two equal infinite neighbours add nothing; the finite gap of c still counts
    points = [(-math.inf, 4.0), (-math.inf, 3.0), (-math.inf, 2.0), (1.0, 1.0), (2.0, 0.0)]
    distance = crowding_distance(points)
    assert distance[1] == pytest.approx((4 - 2) / 4)
    assert distance[2] == math.inf  # next to 1.0 on one side and -inf on the other
    with pytest.raises(ValueError, match="NaN"):
        crowding_distance([(math.nan, 1.0), (1.0, 0.0)])


def test_random_fronts_with_infinite_values_keep_their_boundary_points() -> None:
    rng = random.Random(19)
    for trial in range(3000):
        points = _random_front(rng)
        distance = crowding_distance(points)
        assert not any(math.isnan(d) for d in distance), (trial, points, distance)
        _extremes(points, distance)
        boundary = {i for i, d in enumerate(distance) if math.isinf(d)}
        members = [(Candidate(i, Arch.from_code(i)), p) for i, p in enumerate(points)]
        kept = survivors(members, len(boundary))
        assert {c.id for c, _ in kept} == boundary, (trial, points, distance)


def _connected(arch: Arch) -> bool:
    """Whether the cell's output (node 3) depends on its input (node 0) through non-``none`` edges."""
    from natsray.search_space import EDGES

    reach = {0}
    for (to_node, from_node), op in zip(EDGES, arch.ops, strict=True):  # EDGES in topological order
        if op != "none" and from_node in reach:
            reach.add(to_node)
    return 3 in reach


def _naswot_like(arch: Arch) -> tuple[float, float, float]:
    """(score, -latency, -size) to maximise: score is -inf for a disconnected cell, as naswot's; the
    objectives conflict (more ops: a higher score, a higher latency; a cell of ``none`` edges is fast
    and disconnected), so fronts are large and hold -inf points."""
    noise = [(arch.code * prime % 1009) / 1009 for prime in (2654435761, 40503, 97)]
    ops = sum(op != "none" for op in arch.ops)
    score = sum(op.startswith("nor_conv") for op in arch.ops) + noise[0] if _connected(arch) else -math.inf
    return score, -(ops + noise[1]), -noise[2]


@pytest.mark.parametrize("seed", range(5))
def test_seeded_nsga2_run_with_minus_inf_keeps_its_boundary_points(seed: int) -> None:
    from natsray.strategies.nsga2 import NSGA2, NSGA2Config

    strategy = NSGA2(NSGA2Config(population=20), num_objectives=3, seed=seed)
    evaluations, generation = 0, strategy.generation
    union: list = []
    while evaluations < 400:
        candidate = strategy.ask()
        assert candidate is not None
        if strategy.generation != generation:  # the survivors of the last generation were just chosen
            generation = strategy.generation
            if union:
                front = [union[i] for i in non_dominated_sort([f for _, f in union])[0]]
                kept = {f for _, f in strategy.population}
                if len(front) <= 20:
                    assert {f for _, f in front} <= kept
                else:  # per objective, the extremes and the finite extremes (next to an infinite value)
                    for m in range(3):
                        values = [f[m] for _, f in front]
                        finite = [v for v in values if math.isfinite(v)]
                        for extreme in {min(values), max(values), min(finite), max(finite)}:
                            assert any(f[m] == extreme for f in kept), (seed, generation, m, extreme)
            union = list(strategy.population)
        fitness = _naswot_like(candidate.arch)
        strategy.tell(candidate, fitness)
        union.append((candidate, fitness))
        evaluations += 1


@pytest.mark.parametrize("kind", ["standard", "rank", "log"])
def test_surrogate_targets_of_infinite_fitness_are_finite_and_ordered(kind: str) -> None:
    import numpy as np

    from natsray.strategies.surrogate import transform_targets

    y = np.array([-math.inf, 1.0, 3.0, 2.0, -math.inf])
    targets = transform_targets(y, kind)
    assert np.isfinite(targets).all()
    assert targets[0] <= targets[1] < targets[3] < targets[2]


def test_summary_pareto_front_keeps_a_point_with_an_infinite_objective() -> None:
    """The run summary's front (engine/summary.py): a -inf score with the lowest latency is on it."""
    from natsray.engine.summary import pareto_front

    points = [
        ("fast", (-math.inf, -0.1)),
        ("a", (1500.0, -1.0)),
        ("b", (1400.0, -2.0)),
        ("c", (1600.0, -2.0)),
    ]
    assert [name for name, _ in pareto_front(points)] == ["fast", "a", "c"]
