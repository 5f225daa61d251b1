"""A separate Python process that draws a sweep report's figures, started before the sweep's runs.

Importing matplotlib and drawing the two anytime figures is most of what ``sweep_report`` costs
after a sweep of table look-ups (about 0.7 s to import and 0.4 s a figure on the development
machine, against 0.5 s for everything else). A :class:`PlotProcess` started when the sweep starts
imports matplotlib on a core the runs leave free, then draws the figures while the report's own
process writes its tables. Nothing depends on it: when it cannot start, dies, answers with an
error, or does not answer within :data:`ANSWER_S`, the caller draws in its own process
(:func:`natsray.study.plots.plot_anytime`, the same function, so the same PNG bytes).

The child is ``python -m natsray.study.plot_process`` (never a fork of a process that may hold Ray's
threads, and never a re-import of the user's ``__main__``, as ``multiprocessing``'s spawn does).
Jobs and answers are pickles on its stdin and stdout; it ignores SIGINT (Ctrl-C is the parent's
to handle) and exits when its stdin closes, so it ends with the parent however the parent ends.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["ANSWER_S", "PlotProcess"]

ANSWER_S = 120.0
"""The longest wait, in seconds, for the child's answer to a batch of figures (its imports included)."""

_CLOSE_S = 5.0


class PlotProcess:
    """The figure-drawing child of a sweep's front door (``natsray run --seeds``, :func:`natsray.sweep`).

    Use :meth:`start` (None when it is not worth it or cannot start), :meth:`submit` and
    :meth:`results` per batch of figures, and :meth:`close` (or ``with``).
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._reader: threading.Thread | None = None
        self._answer: list[Any] = []
        self._jobs = 0

    @classmethod
    def start(cls) -> PlotProcess | None:
        """Start the child, or return None: on a one-core machine (it would only take the runs' core)
        or when the interpreter cannot be started."""
        if (os.cpu_count() or 1) < 2:
            return None
        root = str(Path(__file__).resolve().parents[2])  # this natsray, however it was found
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root if not path else root + os.pathsep + path}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "natsray.study.plot_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except OSError:
            return None
        return cls(process)

    def __enter__(self) -> PlotProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, jobs: Sequence[tuple[Any, ...]]) -> None:
        """Send the child ``plot_anytime(*job)`` for each job, to draw while the caller goes on; one
        batch at a time (call :meth:`results` before the next)."""
        self._jobs = len(jobs)
        self._answer = []
        process = self._process
        if process.poll() is not None:
            return
        try:
            _send(process.stdin, list(jobs))  # type: ignore[arg-type]
        except (OSError, pickle.PicklingError, ValueError):
            self.close()
            return

        def read() -> None:
            with contextlib.suppress(Exception):  # a dead child: answered as all False
                self._answer.append(pickle.load(process.stdout))  # type: ignore[arg-type]

        self._reader = threading.Thread(target=read, name="natsray-plot-answer", daemon=True)
        self._reader.start()

    def results(self, timeout: float = ANSWER_S) -> list[bool]:
        """Wait up to ``timeout`` seconds for the submitted batch; True for each figure written.

        All False (and the child stopped) when it is gone, did not answer in time or could not be
        sent the jobs; a job it failed on is False (its error went to stderr).
        """
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.join(timeout)
        answer = self._answer
        if reader is None or reader.is_alive() or not answer or len(answer[0]) != self._jobs:
            self.close(wait=0.0)
            return [False] * self._jobs
        return [error is None for error in answer[0]]

    def close(self, wait: float = _CLOSE_S) -> None:
        """End the child: close its stdin (it exits once idle), wait up to ``wait`` seconds, then kill it."""
        process = self._process
        if process.stdin is not None and not process.stdin.closed:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _send(stream: IO[bytes], value: Any) -> None:
    pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def _serve() -> None:
    """The child: draw each batch of jobs read from stdin, answer one error (or None) per job."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs_in, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed while drawing must not mix with the answers
    from natsray.study.plots import plot_anytime, preload

    preload()
    while True:
        try:
            jobs = pickle.load(jobs_in)
        except EOFError:
            return
        errors: list[str | None] = []
        for job in jobs:
            try:
                plot_anytime(*job)
            except Exception as exc:
                print(f"natsray: plot process: {type(exc).__name__}: {exc}", file=sys.stderr)
                errors.append(str(exc) or type(exc).__name__)
            else:
                errors.append(None)
        _send(answers, errors)


if __name__ == "__main__":
    _serve()
