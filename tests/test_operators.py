"""Sampling, mutation, crossover and neighbours: exact semantics, determinism, uniformity."""

from __future__ import annotations

import collections
import random

import numpy as np
import pytest
from scipy.stats import chisquare

from natsray.search_space import CROSSOVERS, MUTATIONS, NUM_ARCHS, Arch, all_archs
from natsray.search_space.operators import crossover, mutate, neighbours, random_sample

A = Arch.from_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|")
B = Arch.from_str("|skip_connect~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|")
C = Arch(("none",) * 6)


def _distance(a: Arch, b: Arch) -> int:
    return sum(x != y for x, y in zip(a.ops, b.ops, strict=True))


def _run(rng: random.Random | np.random.Generator) -> list[Arch]:
    """A mixed sequence exercising every operator."""
    out = [random_sample(rng) for _ in range(5)]
    out += [mutate(A, rng, kind) for kind in MUTATIONS for _ in range(5)]
    out += [crossover([A, B, C], rng, kind) for kind in CROSSOVERS for _ in range(5)]
    return out


@pytest.mark.parametrize("make", [random.Random, np.random.default_rng])
def test_same_seed_same_sequence_different_seed_differs(make) -> None:
    assert _run(make(7)) == _run(make(7))
    assert _run(make(7)) != _run(make(8))


def test_global_rng_untouched() -> None:
    random.seed(0)
    np.random.seed(0)
    expected = (random.random(), np.random.random())
    random.seed(0)
    np.random.seed(0)
    _run(random.Random(1))
    _run(np.random.default_rng(1))
    assert (random.random(), np.random.random()) == expected


def test_bad_rng_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"random\.Random or numpy\.random\.Generator"):
        random_sample(3)  # type: ignore[arg-type]


def test_random_sample_reaches_both_ends_and_nothing_else() -> None:
    rng = random.Random(0)
    codes = collections.Counter(random_sample(rng).code for _ in range(250_000))
    assert set(codes) == set(range(NUM_ARCHS))  # every cell, including 0 and 15624
    assert chisquare(list(codes.values())).pvalue > 0.001


def test_neighbours_exact() -> None:
    result = neighbours(A)
    assert len(result) == len(set(result)) == 24
    assert all(_distance(A, n) == 1 for n in result)
    assert result[0] == Arch(("none", *A.ops[1:]))
    assert result[-1] == Arch((*A.ops[:5], "skip_connect"))
    assert {n for n in all_archs() if _distance(A, n) == 1} == set(result)


def test_edge_mutation_is_uniform_over_the_24_neighbours() -> None:
    rng = random.Random(3)
    counts = collections.Counter(mutate(A, rng, "edge") for _ in range(24_000))
    assert set(counts) == set(neighbours(A))
    assert chisquare(list(counts.values())).pvalue > 0.001


def test_node_mutation_follows_nats_bench_edge_probabilities() -> None:
    rng = random.Random(4)
    n = 36_000
    changed = collections.Counter()
    for _ in range(n):
        child = mutate(A, rng, "node")
        assert _distance(A, child) == 1
        changed[next(e for e in range(6) if child.ops[e] != A.ops[e])] += 1
    # node 1 has one input edge, node 2 two, node 3 three; nodes are picked uniformly
    expected = [n / 3, n / 6, n / 6, n / 9, n / 9, n / 9]
    assert chisquare([changed[e] for e in range(6)], expected).pvalue > 0.001


def test_rate_mutation_changes_picked_edges_to_other_ops() -> None:
    rng = random.Random(5)
    children = [mutate(A, rng, "rate", rate=0.5) for _ in range(4000)]
    distances = collections.Counter(_distance(A, c) for c in children)
    assert 0 not in distances  # never returns the parent
    assert set(distances) == {1, 2, 3, 4, 5, 6}
    # P(k edges | k >= 1) for Binomial(6, 1/2), plus P(k = 0) moved onto k = 1
    assert distances[6] / 4000 == pytest.approx(1 / 64, abs=0.01)
    assert distances[1] / 4000 == pytest.approx(7 / 64, abs=0.02)
    assert all(mutate(A, rng, "rate", rate=1.0) != A for _ in range(50))
    full = [mutate(A, rng, "rate", rate=1.0) for _ in range(50)]
    assert all(_distance(A, c) == 6 for c in full)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5])
def test_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="mutation rate must be in"):
        mutate(A, random.Random(0), "rate", rate=rate)


def test_unknown_kinds_and_too_few_parents() -> None:
    rng = random.Random(0)
    with pytest.raises(ValueError, match="mutation kind 'swap'"):
        mutate(A, rng, "swap")
    with pytest.raises(ValueError, match="crossover kind 'pmx'"):
        crossover([A, B], rng, "pmx")
    with pytest.raises(ValueError, match="at least 2 parents, got 1"):
        crossover([A], rng)


@pytest.mark.parametrize("kind", list(CROSSOVERS))
def test_children_carry_only_parental_ops(kind: str) -> None:
    rng = random.Random(11)
    parents = [A, B, C]
    for _ in range(300):
        child = crossover(parents, rng, kind)
        assert all(child.ops[e] in {p.ops[e] for p in parents} for e in range(6))


def test_uniform_crossover_mixes_every_edge() -> None:
    rng = random.Random(2)
    children = [crossover([A, B], rng, "uniform") for _ in range(2000)]
    for edge in range(6):
        from_a = sum(c.ops[edge] == A.ops[edge] for c in children) / len(children)
        assert from_a == pytest.approx(0.5, abs=0.05)


def _runs(child: Arch, parents: list[Arch]) -> list[int]:
    """Which parent each edge came from (A and B differ on every edge)."""
    return [next(i for i, p in enumerate(parents) if p.ops[e] == child.ops[e]) for e in range(6)]


def test_one_point_is_prefix_of_one_parent_suffix_of_the_other() -> None:
    assert all(a != b for a, b in zip(A.ops, B.ops, strict=True))
    rng = random.Random(4)
    shapes = collections.Counter()
    for _ in range(2000):
        source = _runs(crossover([A, B], rng, "one_point"), [A, B])
        cut = next(i for i in range(1, 6) if source[i] != source[0])
        assert source == [source[0]] * cut + [1 - source[0]] * (6 - cut)
        shapes[(source[0], cut)] += 1
    assert set(shapes) == {(first, cut) for first in (0, 1) for cut in range(1, 6)}
    assert chisquare(list(shapes.values())).pvalue > 0.001


def test_two_point_is_three_alternating_segments() -> None:
    rng = random.Random(6)
    shapes = collections.Counter()
    for _ in range(2000):
        source = _runs(crossover([A, B], rng, "two_point"), [A, B])
        cuts = tuple(i for i in range(1, 6) if source[i] != source[i - 1])
        assert len(cuts) == 2
        shapes[(source[0], cuts)] += 1
    assert len(shapes) == 2 * 10
    assert chisquare(list(shapes.values())).pvalue > 0.001


def test_segments_rotate_through_three_parents() -> None:
    parents = [
        A,
        B,
        Arch(("avg_pool_3x3", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect")),
    ]
    assert all(len({p.ops[e] for p in parents}) == 3 for e in range(6))
    rng = random.Random(8)
    for _ in range(300):
        source = _runs(crossover(parents, rng, "two_point"), parents)
        starts = [0] + [i for i in range(1, 6) if source[i] != source[i - 1]]
        segment_parents = [source[i] for i in starts]
        assert len(segment_parents) == 3
        assert segment_parents == [(segment_parents[0] + k) % 3 for k in range(3)]


def test_operators_return_new_values_and_leave_inputs_alone() -> None:
    before = (A, B)
    rng = random.Random(0)
    mutate(A, rng)
    crossover([A, B], rng)
    assert before == (A, B)
