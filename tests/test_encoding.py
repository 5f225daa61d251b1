"""Encodings: shapes, exact bits, injectivity over the whole space."""

from __future__ import annotations

import numpy as np
import pytest

from natsray.search_space import (
    ENCODING_DIMS,
    ENCODINGS,
    NUM_ARCHS,
    OPS,
    Arch,
    all_archs,
    encode,
    encode_many,
)

A = Arch.from_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|")


@pytest.mark.parametrize("kind", list(ENCODINGS))
def test_shapes_and_injective_over_all_cells(kind: str) -> None:
    matrix = encode_many(all_archs(), kind)
    assert matrix.shape == (NUM_ARCHS, ENCODING_DIMS[kind])
    assert set(np.unique(matrix)) <= {0.0, 1.0}
    assert len({row.tobytes() for row in matrix}) == NUM_ARCHS
    assert np.array_equal(matrix[123], encode(Arch.from_code(123), kind))


def test_onehot_bits() -> None:
    vector = encode(A, "onehot").reshape(6, 5)
    assert vector.sum(axis=1).tolist() == [1.0] * 6
    assert vector.argmax(axis=1).tolist() == [OPS.index(op) for op in A.ops]


def test_archai_bits() -> None:
    assert encode(Arch(("none",) * 6), "archai").tolist() == [0.0] * 24
    assert encode(A, "archai").reshape(6, 4).tolist() == [
        [0, 0, 1, 0],
        [0, 0, 1, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 1, 0],
        [1, 0, 0, 0],
    ]


def _naszilla_path_indices(arch: Arch) -> set[int]:
    """naszilla cell_201 get_path_indices, written out: digits in naszilla's op order."""
    order = ["avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect"]
    d = [order.index(op) for op in arch.ops]
    return {d[3], 5 + d[0] + 5 * d[4], 5 + d[1] + 5 * d[5], 30 + d[0] + 5 * d[2] + 25 * d[5]}


def test_path_bits_match_naszilla() -> None:
    for arch in (A, Arch(("none",) * 6), Arch.from_code(9999), Arch(("skip_connect",) * 6)):
        assert set(np.flatnonzero(encode(arch, "path"))) == _naszilla_path_indices(arch)
    # A: 3<-0 none (3); 1<-0,3<-1 conv3,conv3 (5+2+10); 2<-0,3<-2 conv3,pool (5+2+0); long conv3,pool,pool
    assert set(np.flatnonzero(encode(A, "path"))) == {3, 17, 7, 32}


def test_path_shares_the_length_two_block() -> None:
    """Equal op sequences on both length-2 paths set one bit: 3 bits instead of 4."""
    arch = Arch(("nor_conv_1x1", "nor_conv_1x1", "none", "none", "skip_connect", "skip_connect"))
    assert encode(arch, "path").sum() == 3


def test_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="encoding 'adj' is not one of onehot, path, archai"):
        encode(A, "adj")
    assert encode_many([], "path").shape == (0, 155)
