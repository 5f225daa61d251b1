"""natsray.experiment.arrow_columns: the same arrays as ``pyarrow.array``, built without pandas."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from natsray.experiment.arrow_columns import booleans, column, floats


def _outcome(values):
    """What converting ``values`` gives: the array, or the kind of error."""
    try:
        return pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        return type(exc)


def _same(values) -> None:
    expected = _outcome(values)
    if isinstance(expected, type):
        with pytest.raises(expected):
            column(values)
        return
    got = column(values)
    assert got.type == expected.type, values
    assert got.null_count == expected.null_count, values
    assert repr(got.to_pylist()) == repr(expected.to_pylist()), values  # NaN and -0.0 included
    got.validate(full=True)


CASES = [
    [],
    [None, None],
    [1, 2, 3],
    [1, None, -(2**63)],
    [2**63 - 1, 0],
    [2**63],  # beyond int64: Arrow's own error
    [1.5, float("nan"), None, -0.0],
    [1, 2.5],
    [2**53, 0.5],
    [2**53 + 1, 0.5],  # not exact as a double: Arrow refuses it
    ["a", None, "é", ""],
    ["a", 1],  # mixed: Arrow's error (the journal falls back to text)
    [True, False, None],
    [True, 1],
    [[1, 2], None, [], [3]],
    [[1, 2.5], [0.25]],
    [[], []],
    [[1, None]],
    [[[1]], [[2]]],
    [{"a": 1}, None],
    [math.inf, -math.inf],
]


@pytest.mark.parametrize("values", CASES, ids=range(len(CASES)))
def test_column_equals_pyarrow_array(values) -> None:
    _same(values)


def test_random_columns_equal_pyarrow_array() -> None:
    rng = random.Random(0)
    makers = [
        lambda: None,
        lambda: rng.randint(-(10**6), 10**6),
        lambda: rng.random() * 100,
        lambda: rng.choice(["|nor_conv_3x3~0|+|none~0|skip_connect~1|", "ok", "error", ""]),
        lambda: [rng.random() for _ in range(rng.randint(0, 3))],
        lambda: [rng.randint(0, 99) for _ in range(rng.randint(0, 3))],
    ]
    for _ in range(400):
        kinds = rng.sample(makers, rng.randint(1, 3))
        _same([rng.choice(kinds)() for _ in range(rng.randint(1, 40))])


def _reference_floats(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(values.cast(pa.float64()), np.nan).to_numpy(), dtype=float)


def test_floats_and_booleans_equal_pyarrow_compute() -> None:
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(0, 30)
        numbers = [
            None if rng.random() < 0.3 else rng.choice([rng.random(), rng.randint(-5, 5)]) for _ in range(n)
        ]
        flags = [None if rng.random() < 0.3 else rng.random() < 0.5 for _ in range(n)]
        start = rng.randint(0, n)
        for array in (pa.array(numbers), pa.array(numbers)[start:]):  # sliced: a non-zero offset
            expected = _reference_floats(array)
            got = floats(pa.chunked_array([array, array[:2]]) if len(array) else array)
            assert np.array_equal(got[: len(array)], expected, equal_nan=True)
        for array in (pa.array(flags, pa.bool_()), pa.array(flags, pa.bool_())[start:]):
            expected = np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)
            assert np.array_equal(booleans(pa.chunked_array([array], pa.bool_())), expected)
    assert np.isnan(floats(pa.array([None, None]))).all()  # a null-typed column
    assert floats(pa.chunked_array([], pa.float64())).shape == (0,)
    with pytest.raises(TypeError, match="not bool"):
        booleans(pa.array([1, 2]))


def test_no_pandas_import() -> None:
    """The point of the module: a journal's columns are built, and read back as NumPy, without
    importing pandas."""
    code = (
        "import sys\n"
        "import pyarrow as pa, pyarrow.compute as pc\n"
        "from natsray.experiment.arrow_columns import booleans, column, floats\n"
        "from natsray.experiment.journal_table import table_from_columns\n"
        "t = table_from_columns({'candidate_id': [0, 1], 'arch': ['a', 'b'], 'objective.x': [1.5, None],"
        " 'fitness': [[1.5], None], 'parents': [[], [0]], 'error': [None, None]})\n"
        "assert t.num_rows == 2 and t.column('error').null_count == 2\n"
        "values = column([1.5, None, 3])\n"
        "print(floats(pa.chunked_array([values, values[1:]])).tolist())\n"
        "print(booleans(pc.equal(column(['ok', 'failed', None]), column(['ok'])[0])).tolist())\n"
        "print('pandas' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["[1.5, nan, 3.0, nan, 3.0]", "[True, False, False]", "False"]
