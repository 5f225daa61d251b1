"""The standard streams of a command, whoever holds their other end.

* Standard output whose reader may leave (``natsray show ... | head -1``): the command finishes
  quietly and exits 141 (128 + SIGPIPE, as ``cat`` or ``grep``).
* Standard error that cannot be written (``2>/dev/full``, a reader gone, a terminal closed): its
  diagnostics (progress bars, warnings, outcome lines) are dropped and the command carries on; its
  exit code is what it would have been.
* Standard streams the shell closed (``2>&-``, ``>&-``): what would be written there is dropped,
  as if written to ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

__all__ = ["ClosedPipeGuard", "LostStreamGuard", "open_closed_streams", "stdout_closed"]


class _StreamGuard:
    """A text stream that stops writing once a write or flush has raised one of :attr:`lost_on`."""

    lost_on: tuple[type[Exception], ...] = ()

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lost = False

    def _lose(self) -> None:
        self.lost = True

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return self.stream.write(text)
            except self.lost_on:
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self.stream.flush()
            except self.lost_on:
                self._lose()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.stream, name)


class ClosedPipeGuard(_StreamGuard):
    """``sys.stdout`` while a command runs: once the reader has gone (``| head``), what is printed is
    dropped instead of raising ``BrokenPipeError`` halfway through the command, so a command finishes
    writing its files (plots, ``aggregate.json``) whoever reads its output; it then exits 141."""

    lost_on = (BrokenPipeError,)

    @property
    def reader_gone(self) -> bool:
        return self.lost

    def _lose(self) -> None:
        super()._lose()
        stdout_closed()


class LostStreamGuard(_StreamGuard):
    """``sys.stderr`` while a command runs: diagnostics are never worth a run. A write that fails
    (``2>/dev/full``: ENOSPC; a reader gone: EPIPE; a closed terminal: EIO) drops it and what follows,
    where it would otherwise stop a sweep between two runs (tqdm's bar, an outcome line, a warning);
    the stream's descriptor then points at ``/dev/null``, so that forked workers and the interpreter's
    final flush write there without error."""

    lost_on = (OSError, ValueError)  # ValueError: a stream closed

    def _lose(self) -> None:
        super()._lose()
        with contextlib.suppress(OSError, ValueError, AttributeError):
            _to_devnull(self.stream.fileno())


def _to_devnull(fd: int) -> None:
    """Point descriptor ``fd`` at ``/dev/null``."""
    null = os.open(os.devnull, os.O_RDWR)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)


def open_closed_streams() -> None:
    """Descriptors 0-2 the shell closed (``2>&-``, ``>&-``) are opened on ``/dev/null``, and the
    ``sys.stdout`` / ``sys.stderr`` Python left ``None`` for them write there. Otherwise the next file
    opened (a run's journal) would take descriptor 2 and receive what child processes and native code
    (forked workers, Ray, Arrow) write to their stderr, and the first progress bar or warning would stop
    the command (tqdm and ``print`` cannot write to ``None``)."""
    for fd in (0, 1, 2):  # in order: /dev/null opened for one takes its number
        try:
            os.fstat(fd)
        except OSError:
            with contextlib.suppress(OSError):
                _to_devnull(fd)
    # a descriptor Python found closed at start-up may hold another file by now: not written through
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the process's stdout, never closed)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def stdout_closed() -> int:
    """The reader of stdout left (``| head``): exit quietly as other command-line programs do."""
    # Python's recipe: point stdout at devnull so the interpreter's final flush cannot fail again
    with contextlib.suppress(OSError, ValueError):
        _to_devnull(sys.stdout.fileno())
    return 128 + 13  # SIGPIPE
