"""The run directory's durable state: an append-only results journal and atomic snapshots.

``evaluations.jsonl`` gets one JSON line per finished evaluation, flushed and fsynced per
batch, so a run killed at any moment (even SIGKILL) loses at most the lines it was writing;
a torn last line is dropped when the journal is reopened. ``checkpoint.json`` and
``summary.json`` are replaced atomically (temporary file + fsync + ``os.replace``), so a
reader sees either the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_FILE",
    "JOURNAL_FILE",
    "SUMMARY_FILE",
    "Journal",
    "atomic_write_json",
    "read_journal",
    "read_json",
]

JOURNAL_FILE = "evaluations.jsonl"
CHECKPOINT_FILE = "checkpoint.json"
SUMMARY_FILE = "summary.json"


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (tmp file + fsync + ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, allow_nan=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_json(path: str | Path) -> Any | None:
    """The JSON content of ``path``, or None when it does not exist.

    Raises:
        ValueError: one line naming the file when it is not valid JSON.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _parse_lines(path: Path, data: bytes) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
    return records


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """The records of a journal's complete lines, read-only (a torn last line is ignored).

    Raises:
        ValueError: one line naming file and line number when a complete line is corrupt.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    return _parse_lines(path, data[: data.rfind(b"\n") + 1])


class Journal:
    """The append-only ``evaluations.jsonl`` of one run.

    Opening an existing journal reads every complete line and truncates a torn last line
    (one without its newline, left by a kill mid-write) so appends continue cleanly.

    Args:
        path: The journal file; created on the first append.

    Raises:
        ValueError: one line naming file and line number when a line before the last is corrupt.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: list[dict[str, Any]] = []
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        self.records = _parse_lines(self.path, data[:complete])
        if complete < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(complete)
                handle.flush()
                os.fsync(handle.fileno())

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records as JSON lines, then flush and fsync once."""
        records = list(records)
        if not records:
            return
        text = "".join(json.dumps(record, allow_nan=True) + "\n" for record in records)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        self.records.extend(records)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename on POSIX file systems (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
