"""Fixtures shared by test modules."""

from __future__ import annotations

from pathlib import Path

import archive_factory as factory
import numpy as np
import pytest

from natsray.evaluators.table import export_table


@pytest.fixture(scope="module")
def full_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The factory archive's table with every cell given a record (copies of the 24 real ones, each
    float shifted by a little per cell), so that searches rarely hit a failure."""
    root = tmp_path_factory.mktemp("archive")
    factory.write_archive(root, 24)
    small = np.load(export_table(root, root.parent / "small.npz", progress=False))
    recorded = np.flatnonzero(small["has_record"])
    rows = np.arange(len(small["has_record"]))
    source = recorded[rows % len(recorded)]
    arrays = {}
    for key in small.files:
        array = small[key]
        if key in ("arch", "nats_index", "has_record") or array.ndim == 0:
            arrays[key] = array
            continue
        array = array[source]
        if array.dtype.kind == "f":
            array = array + (rows % 101).reshape(-1, *([1] * (array.ndim - 1))) * 1e-3
        arrays[key] = array
    arrays["has_record"] = np.ones_like(small["has_record"])
    path = root.parent / "table.npz"
    np.savez(path, **arrays)
    return path
