"""Opening a NATS-Bench TSS archive directory and reading cell records out of it.

A fast-mode archive is a directory holding ``meta.pickle.pbz2`` (the 15,625 arch strings
in NATS index order) and one ``NNNNNN.pickle.pbz2`` per NATS index holding
``{hp: ArchResults state}``. :func:`read_record` loads one such file through nats_bench's
own classes, extracts the floats natsray serves into a flat *cell record* (raw key ->
per-trial array, see :mod:`natsray.evaluators.metrics`) and drops the loaded objects
again, so memory stays bounded however many cells are read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from natsray.evaluators.base import EvaluatorError
from natsray.evaluators.metrics import COST_QUANTITIES

__all__ = [
    "ARCHIVE_LAYOUT",
    "META_FILE",
    "extract_record",
    "first_record_index",
    "open_archive",
    "read_record",
    "record_file",
]

META_FILE = "meta.pickle.pbz2"
ARCHIVE_LAYOUT = f"a NATS-Bench TSS archive directory with {META_FILE} and NNNNNN.pickle.pbz2 files"


def record_file(root: str | Path, index: int) -> Path:
    """Path of the record file of NATS index ``index``."""
    return Path(root) / f"{index:06d}.pickle.pbz2"


def open_archive(path: str | Path, field: str = "archive") -> Any:
    """Open an archive with ``nats_bench.create(path, "tss", fast_mode=True, verbose=False)``.

    Args:
        path: The archive directory.
        field: Config field named in error messages.

    Returns:
        The nats_bench ``NATStopology`` API (records are loaded lazily).

    Raises:
        EvaluatorError: one line naming the path and the expected layout.
    """
    import nats_bench

    root = Path(path).expanduser()
    if not root.exists():
        raise EvaluatorError(f"{field}: {root} does not exist; expected {ARCHIVE_LAYOUT}")
    if not root.is_dir():
        raise EvaluatorError(f"{field}: {root} is a file; expected {ARCHIVE_LAYOUT}")
    if not (root / META_FILE).is_file():
        raise EvaluatorError(f"{field}: {root} has no {META_FILE}; expected {ARCHIVE_LAYOUT}")
    if not record_file(root, 0).is_file() and not any(_record_names(root)):
        raise EvaluatorError(
            f"{field}: {root} holds no NNNNNN.pickle.pbz2 records; expected {ARCHIVE_LAYOUT}"
        )
    try:
        api = nats_bench.create(str(root), "tss", fast_mode=True, verbose=False)
    except Exception as exc:
        raise EvaluatorError(
            f"{field}: {root / META_FILE} is not a NATS-Bench meta file ({type(exc).__name__}); "
            f"expected {ARCHIVE_LAYOUT}"
        ) from None
    if not api.meta_archs:
        raise EvaluatorError(f"{field}: {root / META_FILE} lists no architectures; expected {ARCHIVE_LAYOUT}")
    return api


def _record_names(root: Path) -> Iterable[str]:
    return (
        name
        for name in os.listdir(root)
        if name.endswith(".pickle.pbz2") and name[:6].isdigit() and name != META_FILE
    )


def first_record_index(api: Any) -> int:
    """The lowest NATS index the archive has a record file for (used to probe it)."""
    if record_file(api.archive_dir, 0).is_file():
        return 0
    return min(int(name[:6]) for name in _record_names(Path(api.archive_dir)))


def read_record(api: Any, index: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Load NATS index ``index`` through ``api``, extract ``keys`` and free the loaded objects.

    Args:
        api: An API from :func:`open_archive`.
        index: The NATS index.
        keys: Raw keys to extract (None: every key the record has).

    Raises:
        EvaluatorError: the record file is missing or unreadable.
    """
    path = record_file(api.archive_dir, index)
    if not path.is_file():
        raise EvaluatorError(
            f"no record for NATS index {index} in archive {api.archive_dir} ({path.name} is missing)"
        )
    try:
        api.reload(api.archive_dir, index)
        return extract_record(api.arch2infos_dict[index], keys)
    except Exception as exc:
        raise EvaluatorError(f"cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    finally:  # drop nats_bench's copy: it is what grows an API to gigabytes
        api.arch2infos_dict.pop(index, None)
        api.evaluated_indexes.discard(index)


def extract_record(hp_results: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Flatten ``{hp: ArchResults}`` into a cell record.

    Per-trial values come from nats_bench's own ``ResultsCount.get_train`` /
    ``get_eval`` at the final epoch (the numbers ``get_more_info`` averages), cost
    quantities from ``ArchResults.get_compute_costs``. Absent values are NaN.

    Args:
        hp_results: One record file's content as nats_bench loads it.
        keys: Raw keys to extract (None: all of them).
    """
    wanted = None if keys is None else set(keys)

    def needed(prefix: str) -> bool:
        return wanted is None or any(key.startswith(prefix) for key in wanted)

    record: dict[str, np.ndarray] = {}
    for hp, results in hp_results.items():
        for run, seeds in results.dataset_seed.items():
            prefix = f"{run}/{hp}/"
            if not needed(prefix):
                continue
            trials = [results.all_results[(run, seed)] for seed in seeds]
            record[prefix + "seeds"] = np.asarray(seeds, dtype=np.int64)
            splits = ["train", *dict.fromkeys(name for trial in trials for name in trial.eval_names)]
            for split in splits:
                if not needed(f"{prefix}{split}/"):
                    continue
                infos = [_trial_info(trial, split) for trial in trials]
                for quantity, source in (("accuracy", "accuracy"), ("loss", "loss"), ("time", "all_time")):
                    key = f"{prefix}{split}/{quantity}"
                    if wanted is None or key in wanted:
                        record[key] = np.array([_float(info.get(source)) for info in infos])
            if needed(f"{prefix}cost/"):
                costs = _costs(results, run)
                for quantity in COST_QUANTITIES:
                    key = f"{prefix}cost/{quantity}"
                    if wanted is None or key in wanted:
                        record[key] = np.float64(_float(costs.get(quantity)))
    return record


def _trial_info(trial: Any, split: str) -> dict[str, Any]:
    """One trial's final-epoch info on a split; empty when the archive lacks it."""
    try:
        return trial.get_train() if split == "train" else trial.get_eval(split)
    except (KeyError, ValueError, TypeError):
        return {}


def _costs(results: Any, run: str) -> dict[str, Any]:
    try:
        return results.get_compute_costs(run)
    except (KeyError, ValueError, TypeError, ZeroDivisionError):
        return {}


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)
