"""The Arch value type: string and code round-trips, malformed input."""

from __future__ import annotations

import pickle

import pytest

from natsray.search_space import NUM_ARCHS, OPS, Arch, all_archs

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"


def test_string_and_code_round_trip_for_every_cell() -> None:
    archs = list(all_archs())
    assert len(archs) == NUM_ARCHS == len(set(archs))
    for code, arch in enumerate(archs):
        assert arch.code == code
        assert Arch.from_code(code) == arch
        assert Arch.from_str(arch.to_str()) == arch
        assert Arch.from_indices(arch.op_indices) == arch
    assert len({arch.to_str() for arch in archs}) == NUM_ARCHS


def test_interned_cells_match_validated_construction() -> None:
    """The cells built in bulk (no validation) equal cells built one by one through the constructor:
    the same ops, code, hash and NATS string, and one object per code (also after pickling)."""
    for code in range(0, NUM_ARCHS, 7):
        interned = Arch.from_code(code)
        built = Arch(tuple(OPS[(code // 5**power) % 5] for power in range(5, -1, -1)))
        assert (interned.ops, interned.code, hash(interned)) == (built.ops, built.code, code)
        text = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*built.ops)
        assert interned.to_str() == built.to_str() == text
        assert Arch.from_code(code) is interned
        assert pickle.loads(pickle.dumps(built)) is interned


def test_parse_example() -> None:
    arch = Arch.from_str(EXAMPLE)
    assert arch.ops == (
        "nor_conv_3x3",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "none",
        "nor_conv_3x3",
        "avg_pool_3x3",
    )
    assert str(arch) == EXAMPLE
    assert arch.code == 3 * 5**5 + 3 * 5**4 + 1 * 5**3 + 0 * 5**2 + 3 * 5 + 1


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (EXAMPLE.replace("none~0", "conv_5x5~0"), "'conv_5x5'"),
        (EXAMPLE.replace("none~0", "none~1"), "'none~1'"),
        (EXAMPLE.replace("none~0", "none0"), "'none0'"),
        (EXAMPLE.replace("+|none~0|", "|none~0|"), "2 node groups"),
        (EXAMPLE.replace("|avg_pool_3x3~1|", "|"), "1 edges"),
        ("", "1 node groups"),
    ],
)
def test_malformed_strings_name_the_bad_token(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as info:
        Arch.from_str(text)
    assert "\n" not in str(info.value)


def test_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown op 'conv'"):
        Arch(("conv",) * 6)
    with pytest.raises(ValueError, match="needs 6 ops"):
        Arch(OPS)
    with pytest.raises(ValueError, match=r"0\.\.15624"):
        Arch.from_code(NUM_ARCHS)
    with pytest.raises(ValueError, match="must be a str"):
        Arch.from_str(None)  # type: ignore[arg-type]


def test_hashable_immutable_and_list_coerced() -> None:
    arch = Arch([*OPS[:5], "none"])  # type: ignore[arg-type]
    assert isinstance(arch.ops, tuple)
    assert {arch: 1}[Arch(tuple(arch.ops))] == 1
    with pytest.raises(AttributeError):
        arch.ops = ("none",) * 6  # type: ignore[misc]


def test_canonical_method_delegates() -> None:
    arch = Arch.from_str(EXAMPLE)
    assert arch.canonical().canonical() == arch.canonical()


@pytest.mark.parametrize("collecting", [True, False])
def test_interning_leaves_the_garbage_collector_as_it_found_it(collecting: bool) -> None:
    """The cells are built with the cyclic collector paused (9 of 14 ms were collections); it is on again
    after, unless the process had turned it off itself (a fresh process: interning happens once)."""
    import subprocess
    import sys

    code = (
        "import gc\n"
        f"{'' if collecting else 'gc.disable()'}\n"
        "from natsray.search_space import Arch\n"
        "assert Arch.from_code(7) is Arch.from_code(7) and Arch.from_code(7).code == 7\n"
        "print(gc.isenabled())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(collecting)
