"""The user cache of compact tables exported from archives, so that sweeps read an archive once.

A sweep on ``type: benchmark`` would open the archive in every run (about a second of reading
per run). Instead :meth:`~natsray.evaluators.benchmark.BenchmarkEvaluator.prepare_sweep_shared`
asks :func:`cached_table` for the archive's compact table (:func:`~natsray.evaluators.table.export_table`),
which exports it on first use and reuses it after. Location: ``$NATSRAY_CACHE_DIR``, else
``$XDG_CACHE_HOME/natsray``, else ``~/.cache/natsray``; files ``tables/<path key>-<identity key>.npz``.
The identity is the archive's resolved path, its meta file's size and modification time, the
directory's modification time and its number of record files: replacing, adding or removing a
record file or the meta file gives a new identity, whose table is exported again (the stale one
of the same path is deleted then). Clearing the cache is deleting the directory
(``rm -r ~/.cache/natsray/tables``); nothing else refers to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from pathlib import Path

from natsray.evaluators.archive import META_FILE
from natsray.evaluators.base import EvaluatorError

__all__ = ["archive_identity", "cache_dir", "cached_table"]


def cache_dir() -> Path:
    """``$NATSRAY_CACHE_DIR``, else ``$XDG_CACHE_HOME/natsray``, else ``~/.cache/natsray``."""
    if os.environ.get("NATSRAY_CACHE_DIR"):
        return Path(os.environ["NATSRAY_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "natsray"


def archive_identity(archive: str | Path) -> str:
    """What identifies an archive's content cheaply (no record is read): resolved path, meta file
    size and mtime, directory mtime, number of ``*.pickle.pbz2`` files.

    Raises:
        EvaluatorError: one line when the archive or its meta file is missing.
    """
    root = Path(archive).expanduser().resolve()
    meta = root / META_FILE
    if not meta.is_file():
        raise EvaluatorError(f"evaluator.archive: {root} has no {META_FILE}")
    stat, directory = meta.stat(), root.stat()
    listed = (str(root), directory.st_mtime_ns)  # a file added, removed or renamed changes the mtime
    records = _RECORDS.get(listed)
    if records is None:  # a sweep asks once per evaluator config: one listing of 15,625 names (5-10 ms)
        records = sum(1 for name in os.listdir(root) if name.endswith(".pickle.pbz2")) - 1
        _RECORDS.clear()
        _RECORDS[listed] = records
    return f"{root}|{stat.st_size}|{stat.st_mtime_ns}|{directory.st_mtime_ns}|{records}"


_RECORDS: dict[tuple[str, int], int] = {}
"""The record count of the archive directory listed last, by (path, modification time)."""


def _say(line: str) -> None:
    """One line on stderr, above any progress bar (a sweep's runs bar is up while its first run
    prepares its inputs)."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_table(archive: str | Path, *, export: bool = True) -> Path | None:
    """The archive's compact table from the cache, exported there first when missing or stale.

    Concurrent callers (several sweeps) export once: the export holds a lock file.

    Args:
        archive: The archive directory.
        export: Export when the cache has no current table (False: return None instead).

    Returns:
        The ``.npz`` path (None when absent and ``export`` is False).

    Raises:
        EvaluatorError: the archive is unreadable or the cache directory cannot be written.
    """
    import fcntl

    from natsray.evaluators.table import export_table

    identity = archive_identity(archive)
    prefix = _key(identity.split("|", 1)[0])
    tables = cache_dir() / "tables"
    path = tables / f"{prefix}-{_key(identity)}.npz"
    if path.is_file() or not export:
        return path if path.is_file() else None
    try:
        tables.mkdir(parents=True, exist_ok=True)
        with open(tables / f"{prefix}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be exporting the same archive
            if not path.is_file():
                for stale in tables.glob(f"{prefix}-*.npz"):
                    with contextlib.suppress(OSError):
                        stale.unlink()
                root = Path(archive).expanduser().resolve()
                _say(
                    f"natsray: reading the archive {root} once into the table cache ({path}): "
                    "about a minute; later runs on this archive read the table"
                )
                start = time.perf_counter()
                export_table(archive, path, progress=False)
                _say(f"natsray: table cached in {time.perf_counter() - start:.0f} s")
    except OSError as exc:
        raise EvaluatorError(f"table cache {tables}: {exc}".splitlines()[0]) from None
    return path
