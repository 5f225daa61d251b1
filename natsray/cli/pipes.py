"""Standard output whose reader may leave (``natsray show ... | head -1``): the command finishes
quietly and exits 141 (128 + SIGPIPE, as ``cat`` or ``grep``)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

__all__ = ["ClosedPipeGuard", "stdout_closed"]


class ClosedPipeGuard:
    """``sys.stdout`` while a command runs: once the reader has gone (``| head``), what is printed is
    dropped instead of raising ``BrokenPipeError`` halfway through the command, so a command finishes
    writing its files (plots, ``aggregate.json``) whoever reads its output; it then exits 141."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.reader_gone = False

    def _gone(self) -> None:
        self.reader_gone = True
        stdout_closed()

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.stream, name)


def stdout_closed() -> int:
    """The reader of stdout left (``| head``): exit quietly as other command-line programs do."""
    # Python's recipe: point stdout at devnull so the interpreter's final flush cannot fail again
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + 13  # SIGPIPE
