"""The run directory's durable state: an append-only results journal and atomic snapshots.

``evaluations.jsonl`` gets one JSON line per finished evaluation, written (one ``write``
call, flushed to the operating system) per delivered batch, so a run killed at any moment
(even SIGKILL) loses at most the lines it was writing; a torn last line is dropped when the
journal is reopened. ``fsync`` (which guards against a machine crash, not a killed process)
runs once per checkpoint, before the checkpoint that counts the synced lines is written.
The journal is streamed, never held in memory: a run of millions of evaluations costs
constant memory here. ``checkpoint.json`` and
``summary.json`` are replaced atomically (temporary file + fsync + ``os.replace``), so a
reader sees either the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from natsray.engine.journal_record import encode_record

if TYPE_CHECKING:
    from natsray.engine.journal_record import Entry, RecordEncoder

__all__ = [
    "CHECKPOINT_FILE",
    "JOURNAL_FILE",
    "LOCK_FILE",
    "SUMMARY_FILE",
    "Journal",
    "RunInUseError",
    "RunLock",
    "atomic_write_json",
    "check_not_in_use",
    "drop_torn_line",
    "encode_record",
    "ignore_own_output",
    "lock_holder",
    "make_output_dir",
    "read_journal",
    "read_json",
]

JOURNAL_FILE = "evaluations.jsonl"
CHECKPOINT_FILE = "checkpoint.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"


IGNORE_FILE = ".gitignore"
_IGNORE_ALL = "# natsray output: kept out of git and of Ray's working_dir upload\n*\n"


def make_output_dir(directory: str | Path) -> Path:
    """Create a run or sweep directory (and its parents); a new or empty one gets a ``.gitignore`` of
    ``*``, as pytest's cache and a virtualenv do, so neither git nor Ray's upload of a ``working_dir``
    (which honours ``.gitignore`` files at every level) takes natsray's results along. A directory that
    already holds something gets one only when it holds nothing but natsray's output (a run or sweep
    made by a natsray from before ``.gitignore`` files, resumed: :func:`ignore_own_output`); a user's
    folder that also holds a run is left as it is."""
    directory = Path(directory)
    fresh = not directory.is_dir() or next(directory.iterdir(), None) is None
    directory.mkdir(parents=True, exist_ok=True)
    if fresh:
        (directory / IGNORE_FILE).write_text(_IGNORE_ALL, encoding="utf-8")
    else:
        ignore_own_output(directory)
    return directory


_RUN_OUTPUT = frozenset(
    {
        "config.yaml",
        JOURNAL_FILE,
        JOURNAL_FILE + ".partial",
        CHECKPOINT_FILE,
        SUMMARY_FILE,
        LOCK_FILE,
        "evaluations.csv",
        ".evaluations.csv.partial",
        "best_arch.yaml",
        "best_so_far.png",
        "fitness.png",
        "pareto_front.png",
        "report",  # natsray report RUN_DIR
        IGNORE_FILE,  # a sweep's run made by this natsray
    }
)
"""The names natsray writes in a run directory (the run's files, its plots, ``natsray report``'s folder)."""

_SWEEP_OUTPUT = frozenset(
    {"sweep.yaml", "sweep-runs.jsonl", "store", "report", "aggregate.json", LOCK_FILE, IGNORE_FILE}
)
"""The names natsray writes at the top of a sweep directory, beside its runs' directories."""

_SEED_RUN = re.compile(r"seed-\d+")


def ignore_own_output(directory: Path) -> bool:
    """Give ``directory`` the ``.gitignore`` of ``*`` a new run or sweep directory gets, when it has none
    and holds nothing but natsray's output: a run (its journal or checkpoint, and only the names of
    :data:`_RUN_OUTPUT`) or a sweep (its ``sweep.yaml``, the names of :data:`_SWEEP_OUTPUT` and run
    directories, ``seed-N`` or ``axis=label/seed-N``, holding only a run's names). Any other entry (a
    user's file, a callback's output) leaves it as it is: a ``*`` there would hide the user's files
    from git. An existing ``.gitignore`` is never touched. Returns whether one was written."""
    ignore = directory / IGNORE_FILE
    try:
        if ignore.exists() or not _natsray_output(directory):
            return False
        with open(ignore, "x", encoding="utf-8") as handle:  # "x": never over one made meanwhile
            handle.write(_IGNORE_ALL)
    except OSError:  # unreadable, read-only, raced: the directory works as well without it
        return False
    return True


def _natsray_output(directory: Path) -> bool:
    names = {entry.name for entry in directory.iterdir()}
    if JOURNAL_FILE in names or CHECKPOINT_FILE in names:
        return names <= _RUN_OUTPUT
    if "sweep.yaml" not in names:
        return False
    for name in names - _SWEEP_OUTPUT:
        path = directory / name
        if not path.is_dir():
            return False
        inner = [path] if _SEED_RUN.fullmatch(name) else list(path.iterdir()) if "=" in name else None
        if inner is None or not all(
            _SEED_RUN.fullmatch(run.name) and run.is_dir() and {e.name for e in run.iterdir()} <= _RUN_OUTPUT
            for run in inner
        ):
            return False
    return True


ORPHANS_WAIT_S = 30.0
"""How long taking a lock waits, beyond its own timeout, for processes that its killed holder left
holding it (forked sweep workers: each finishes its current run, at most, then exits)."""


class RunInUseError(ValueError):
    """A run or sweep directory is held by another process (one line naming it and the holder's pid)."""

    def __init__(self, directory: str | Path, holder: str, waited: float = 0.0) -> None:
        wait = f" after waiting {waited:g} s" if waited else ""
        if _gone(holder):
            message = (
                f"{directory}: in use by processes that pid {holder} started and left when it ended (forked "
                f"sweep workers, each finishing its current run){wait}; wait for them or end them"
            )
        else:
            message = f"{directory}: in use by another process (pid {holder}){wait}; "
            message += "stop it or wait for it to finish"
        super().__init__(message)


def _gone(holder: str) -> bool:
    """Whether the pid a lock file names is no longer a running process on this machine (ended, or a
    zombie): then what holds the lock is a child that inherited it."""
    if not holder.isdigit() or int(holder) == os.getpid():
        return False
    try:
        os.kill(int(holder), 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: alive
        return False
    try:
        return Path(f"/proc/{holder}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


class RunLock:
    """An exclusive lock on a run (or sweep) directory, so two processes never append to one journal.

    ``fcntl.flock`` on ``run_dir/.lock``: the operating system releases it when its holder
    exits, however it exits (a SIGKILLed driver, an orphaned Ray worker that outlived it), so a
    file left by a killed holder blocks nothing. :meth:`release` removes the file (nothing reads it
    once no process holds it); a taker that opened the file just before it was removed finds its
    lock on a name no longer in the directory and takes it again on the new file.
    Taking it waits at most ``timeout`` seconds (0: one try), and :data:`ORPHANS_WAIT_S` more when the
    process the lock file names has ended: the lock is then held by processes it forked, which inherited
    it (a SIGKILLed sweep's workers, which finish their current run and exit).

    Args:
        run_dir: The run directory (must exist).
        timeout: Seconds to wait for a holder to finish.

    Raises:
        RunInUseError: one line naming the directory and the holder's pid when the wait times out.
    """

    def __init__(self, run_dir: str | Path, timeout: float = 30.0) -> None:
        import fcntl
        import time

        self.path = Path(run_dir) / LOCK_FILE
        deadline, orphans = time.monotonic() + timeout, False
        while True:
            self._handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline:
                    self._handle.seek(0)
                    holder = self._handle.read().strip() or "?"
                    if not orphans and _gone(holder):  # its killed holder's children: they end soon
                        orphans, deadline = True, now + ORPHANS_WAIT_S
                    else:
                        self._handle.close()
                        raise RunInUseError(run_dir, holder, timeout + orphans * ORPHANS_WAIT_S) from None
                self._handle.close()
                time.sleep(0.1)
                continue
            if self._current():
                break
            self._handle.close()  # its holder removed it as it released it: the lock is on a new file
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(os.getpid()))
        self._handle.flush()

    def _current(self) -> bool:
        """Whether the held file is still the directory's lock file (not removed or replaced)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(self._handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Give the lock back and remove its file (a process that exits without this releases it too)."""
        if not self._handle.closed:
            try:
                if self._current():
                    self.path.unlink()
            except OSError:  # a directory removed or made read-only under it: the lock goes all the same
                pass
            self._handle.close()


def lock_holder(directory: str | Path) -> str | None:
    """The pid (as its lock file names it) of a process holding ``directory``'s :class:`RunLock`, else None.

    Creates nothing: a directory without a lock file is not held. A lock held by this process
    through another open file counts as held (``flock`` locks belong to an open file).
    """
    import fcntl

    try:
        handle = open(Path(directory) / LOCK_FILE, encoding="utf-8")  # noqa: SIM115 - closed below
    except (FileNotFoundError, NotADirectoryError):
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "?"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def check_not_in_use(directory: str | Path) -> None:
    """Raise :class:`RunInUseError` when another process holds ``directory`` (:func:`lock_holder`)."""
    holder = lock_holder(directory)
    if holder is not None:
        raise RunInUseError(directory, holder)


def atomic_write_json(path: str | Path, data: Any, *, indent: int | None = 1, durable: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` atomically (tmp file + fsync + ``os.replace``).

    ``indent=None`` writes one line with the C encoder (``json`` falls back to its pure-Python
    encoder for indented output): for the engine's periodic ``checkpoint.json``. ``durable=False``
    skips the two ``fsync`` calls: the replace is still atomic for a killed process, only a power
    loss may leave the old content (for files that are rewritten from the journal anyway).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, indent=indent, allow_nan=True)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.write("\n")
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if durable:
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


def _parse(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None


def _iter_lines(path: Path, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
    """Records of complete lines ``start..stop-1`` (blank lines skipped), streamed."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if stop is not None and number > stop:
                return
            if not line.endswith(b"\n"):
                return  # torn last line
            if number > start and line.strip():
                yield _parse(path, number, line)


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """The records of a journal's complete lines, read-only (a torn last line is ignored).

    Parsed in one ``json.loads`` call over all lines (several times faster than a call per
    line); a corrupt file is re-read line by line to name the bad line.

    Raises:
        ValueError: one line naming file and line number when a complete line is corrupt.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = [line for line in data[: data.rfind(b"\n") + 1].split(b"\n") if line.strip()]
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
    except json.JSONDecodeError:
        return list(_iter_lines(path))
    if any(type(record) is not dict for record in records):
        return list(_iter_lines(path))  # a line holding several values or a non-object
    return records


class Journal:
    """The append-only ``evaluations.jsonl`` of one run, streamed (never held in memory).

    Opening an existing journal counts its complete lines and truncates a torn last line
    (one without its newline, left by a kill mid-write) so appends continue cleanly.

    Args:
        path: The journal file; created on the first write.
        durable: Flush every :meth:`write` to the operating system and ``fsync`` in :meth:`sync`
            (the default). False (a sweep's runs, which take milliseconds): lines stay in the
            file buffer until :meth:`sync` / :meth:`close` (or a full buffer) flushes them, and
            nothing is fsynced; a run killed meanwhile resumes from its last checkpoint and
            evaluates the lost lines again, identically.
        deferred: Keep the evaluations in memory, unencoded, and create no file (a sweep's run,
            whose whole journal goes to the sweep's columnar store when it finishes:
            :meth:`columns`) until :meth:`materialize`, which first calls ``deferred`` (e.g. to
            create the run directory) and every hook added with :meth:`on_materialize`, then
            writes the lines of the evaluations kept so far.
    """

    def __init__(
        self, path: str | Path, *, durable: bool = True, deferred: Callable[[], None] | None = None
    ) -> None:
        self.path = Path(path)
        self.durable = durable
        self._lines = 0
        self._handle: IO[str] | None = None
        self._unsynced = False
        self._memory: list[Entry | str] | None = None  # a deferred journal's evaluations (or lines)
        self._encoder: RecordEncoder | None = None
        self._texts = False  # lines written with write() are among _memory's items
        self._hooks: list[Callable[[], None]] = []
        self.checkpoint: dict[str, Any] | None = None
        """A deferred journal's run's final ``checkpoint.json`` content, set when it finishes."""
        if deferred is not None:
            self._memory = []
            self._hooks.append(deferred)
        elif self.path.exists():
            self._open_existing()

    @property
    def deferred(self) -> bool:
        """True while the lines are kept in memory (no file written yet)."""
        return self._memory is not None

    def on_materialize(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` (after the earlier ones) when a deferred journal is written to its file."""
        self._hooks.append(hook)

    def materialize(self) -> None:
        """Write a deferred journal's lines to its file and continue on disk (no-op otherwise)."""
        lines = self._memory
        if lines is None:
            return
        for hook in self._hooks:
            hook()
        encoded = self._encoded()
        self._memory = None
        self._lines -= len(lines)
        self.write(encoded)

    def _encoded(self) -> list[str]:
        """A deferred journal's lines."""
        encoder = self._encoder
        return [
            item if isinstance(item, str) else encoder.line(item)  # type: ignore[union-attr]
            for item in self._memory or ()
        ]

    def text(self) -> str:
        """A deferred journal's lines (each ending in a newline), in order.

        Raises:
            ValueError: the journal is on disk (read it with :meth:`records`).
        """
        if self._memory is None:
            raise ValueError(f"{self.path}: the journal is on disk, not deferred")
        return "".join(self._encoded())

    def entries(self) -> list[Entry] | None:
        """A deferred journal's evaluations as :meth:`add` received them, in order; None when the
        journal is on disk or holds lines written with :meth:`write` (read :meth:`text`)."""
        if self._memory is None or self._texts:
            return None
        return self._memory  # type: ignore[return-value]

    def _open_existing(self) -> None:
        self._lines = drop_torn_line(self.path)

    def __len__(self) -> int:
        """Complete lines (evaluation records) in the journal."""
        return self._lines

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Stream the records of lines ``start..stop-1`` (0-based).

        Raises:
            ValueError: one line naming file and line number when a line is corrupt.
        """
        if self._memory is not None:
            return (json.loads(line) for line in self._encoded()[start:stop])
        if not self.path.exists():
            return iter(())
        return _iter_lines(self.path, start, stop)

    def write(self, lines: list[str]) -> None:
        """Append encoded lines (see :func:`encode_record`) in one write, flushed to the OS."""
        if not lines:
            return
        if self._memory is not None:
            self._memory.extend(lines)
            self._lines += len(lines)
            self._texts = True
            return
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._handle.write("".join(lines))
        if self.durable:
            self._handle.flush()
        self._lines += len(lines)
        self._unsynced = True

    def add(self, entries: list[Entry], encoder: RecordEncoder) -> None:
        """Append evaluations: kept as they are by a deferred journal, else written as their lines
        (:meth:`RecordEncoder.line <natsray.engine.journal_record.RecordEncoder.line>`)."""
        if self._memory is not None:
            self._memory.extend(entries)
            self._encoder = encoder
            self._lines += len(entries)
            return
        self.write([encoder.line(entry) for entry in entries])

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records as JSON lines."""
        self.write([encode_record(record) for record in records])

    def sync(self) -> None:
        """Flush and (when durable) fsync what was written (called before each checkpoint)."""
        if self._handle is not None and self._unsynced:
            self._handle.flush()
            if self.durable:
                os.fsync(self._handle.fileno())
            self._unsynced = False

    def close(self) -> None:
        """Sync and close the file (appending again reopens it)."""
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None


def drop_torn_line(path: str | Path) -> int:
    """Cut a torn last line (the bytes after the last newline, left by a process killed mid-write) off
    a file natsray appends to, so that appending resumes on a line of its own and the torn line's
    work is done again. Every append-only file natsray writes is reopened through this.

    Returns:
        The complete lines in the file (0 when it does not exist).
    """
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    lines = complete = 0
    with open(path, "rb") as handle:
        offset = 0
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk.rfind(b"\n")
            if last >= 0:
                complete = offset + last + 1
            offset += len(chunk)
    if complete < size:
        with open(path, "r+b") as handle:
            handle.truncate(complete)
            handle.flush()
            os.fsync(handle.fileno())
    return lines


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
