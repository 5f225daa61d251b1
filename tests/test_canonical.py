"""Canonical form: the NATS partition, idempotence, closure, function preservation."""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import numpy as np
import pytest

from natsray.search_space import NUM_NODES, Arch, all_archs, canonical, is_canonical, unique_str

TABLE = Path(__file__).resolve().parents[2] / "shared" / "nats-tss" / "test_acc_hp200.csv"
ARCHS = list(all_archs())


def _cell_output(arch: Arch, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The cell as a real function: each op a fixed random nonlinear map with op(0) = 0
    (NATS' zero convention), skip = identity, none = 0, nodes sum their inputs."""
    nodes = [x]
    edge = 0
    for _ in range(1, NUM_NODES):
        total = np.zeros_like(x)
        for source in nodes:
            op = arch.ops[edge]
            edge += 1
            if op == "skip_connect":
                total = total + source
            elif op != "none":
                total = total + np.tanh(weights[op] @ source)
        nodes.append(total)
    return nodes[-1]


@pytest.fixture(scope="module")
def outputs() -> dict[Arch, np.ndarray]:
    rng = np.random.default_rng(0)
    weights = {op: rng.normal(size=(8, 8)) for op in ("avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")}
    x = rng.normal(size=8)
    return {arch: _cell_output(arch, weights, x) for arch in ARCHS}


def test_6466_classes_idempotent_and_closed() -> None:
    classes: dict[Arch, list[Arch]] = collections.defaultdict(list)
    for arch in ARCHS:
        classes[canonical(arch)].append(arch)
    assert len(classes) == 6466
    for rep, members in classes.items():
        assert rep in members
        assert canonical(rep) == rep and is_canonical(rep)
        assert rep.canonical() == rep
        assert rep == min(members, key=lambda a: a.code)
        assert len({unique_str(m) for m in members}) == 1
    assert sum(is_canonical(a) for a in ARCHS) == 6466


def test_partition_equals_nats_unique_string_column() -> None:
    if not TABLE.is_file():
        pytest.skip(f"NATS table not found at {TABLE}")
    with TABLE.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(ARCHS)
    # not only the same partition: the very same key string for every cell
    for row in rows:
        assert unique_str(Arch.from_str(row["ArchitectureString"])) == row["UniqueString"]


def test_known_keys() -> None:
    a = Arch.from_str(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    assert unique_str(a) == (
        "((0)@nor_conv_3x3)@avg_pool_3x3+(0)@nor_conv_3x3+((0)@nor_conv_3x3)@nor_conv_3x3+0"
    )
    assert unique_str(Arch(("none",) * 6)) == "#+#+#"


def test_node_relabelling_and_dead_edges_share_a_class() -> None:
    # sums commute and skip edges regroup them: both compute p(p(x)) + p(x) + p(x) + c1(x)
    a = Arch(("avg_pool_3x3", "avg_pool_3x3", "avg_pool_3x3", "nor_conv_1x1", "skip_connect", "skip_connect"))
    b = Arch(("avg_pool_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "avg_pool_3x3", "skip_connect"))
    assert a.canonical() == b.canonical()
    # node 2 does not reach the output (3<-2 none): its incoming edges are dead
    c = Arch(("skip_connect", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_1x1", "none"))
    d = Arch(("skip_connect", "none", "none", "skip_connect", "nor_conv_1x1", "none"))
    assert c.canonical() == d.canonical()
    assert c.canonical().ops[1:3] == ("none", "none")  # dead edges become none
    # node 1 is zero (1<-0 none): its outgoing ops act on zero
    e = Arch(("none", "skip_connect", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1"))
    f = Arch(("none", "skip_connect", "none", "skip_connect", "none", "nor_conv_1x1"))
    assert e.canonical() == f.canonical()


def test_classes_preserve_the_cell_function(outputs: dict[Arch, np.ndarray]) -> None:
    for arch in ARCHS:
        np.testing.assert_allclose(outputs[arch], outputs[canonical(arch)], rtol=1e-12, atol=1e-12)


def test_rule_is_conservative_4930_distinct_functions(outputs: dict[Arch, np.ndarray]) -> None:
    """Different keys may still compute one function: x + 0 vs x, and an all-zero node 2."""
    functions = {np.round(out, 9).tobytes() for out in outputs.values()}
    assert len(functions) == 4930
    kept_zero = Arch(("skip_connect", "none", "none", "nor_conv_3x3", "none", "none"))
    no_zero_op = Arch(("skip_connect", "none", "none", "nor_conv_3x3", "none", "avg_pool_3x3"))
    assert unique_str(kept_zero) == "#+#+(0)@nor_conv_3x3"
    assert unique_str(no_zero_op) == "#+(#+#)@avg_pool_3x3+(0)@nor_conv_3x3"
    np.testing.assert_array_equal(outputs[kept_zero], outputs[no_zero_op])
