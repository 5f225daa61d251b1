"""A separate Python process that draws a sweep report's figures, started before the sweep's runs.

Importing matplotlib and drawing the two anytime figures is most of what ``sweep_report`` costs
after a sweep of table look-ups (about 0.7 s to import and 0.4 s a figure on the development
machine, against 0.5 s for everything else). A :class:`PlotProcess` started when the sweep starts
imports matplotlib on a core the runs leave free (once told so: :meth:`PlotProcess.preload`; where
forked workers take every core, after them), then draws the figures while the report's own
process writes its tables. It runs :data:`NICENESS` steps below its parent's priority, so that where the
runs take every core (a sweep on a local Ray) the import takes what they leave instead of a third of
each core. Nothing depends on it: when it cannot start, dies, answers with an
error, or does not answer within :data:`ANSWER_S`, the caller draws in its own process
(:func:`natsray.study.plots.plot_anytime`, the same function, so the same PNG bytes).

The child is a fresh ``python -c`` (never a fork of a process that may hold Ray's threads, and
never a re-import of the user's ``__main__``, as ``multiprocessing``'s spawn does) that imports
the very natsray its parent runs (:func:`_child_path`), not one that the working directory holds:
``python -m`` would search the working directory first, and a folder named ``natsray`` there
(a clone, a project of that name) would shadow the parent's. Jobs and answers are pickles on its
stdin and stdout; it ignores SIGINT (Ctrl-C is the parent's to handle) and exits when its stdin
closes, so it ends with the parent however the parent ends.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from typing import IO, Any

__all__ = ["ANSWER_S", "GO", "NICENESS", "PlotProcess"]

ANSWER_S = 120.0
"""The longest wait, in seconds, for the child's answers to the figures asked of it (its imports included)."""

_CLOSE_S = 5.0

GO = b"G"
"""The byte the child waits for before it imports anything (natsray, matplotlib): sent by
:meth:`PlotProcess.preload`, or before the first figure."""

NICENESS = 5
"""How much lower than its parent's the child's scheduling priority is (``os.nice``): competing with
one run for a core it gets about a quarter of it (Linux's weights: 335 against 1,024), never none."""

_CHILD = (
    "import sys\n"
    "if sys.path[:1] == ['']:\n"  # what -c puts first (unless PYTHONSAFEPATH): the working directory
    "    del sys.path[0]\n"
    "import signal\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"  # Ctrl-C is the parent's, from the start
    "if sys.stdin.buffer.read(1) != b'G':\n"  # GO: a core is free (or the parent is gone: exit)
    "    sys.exit(0)\n"
    "from natsray.study.plot_process import _serve\n"
    "_serve()\n"
)
"""The child's program: :func:`_serve`, imported from :func:`_child_path`, not the working directory."""


class PlotProcess:
    """The figure-drawing child of a sweep's front door (``natsray run --seeds``, :func:`natsray.sweep`).

    Use :meth:`start` (None when it is not worth it or cannot start), :meth:`submit` for each figure
    (drawn in order while the caller goes on), :meth:`results` for the figures submitted since the
    last call, and :meth:`close` (or ``with``).
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._answers: queue.Queue[str | _Gone | None] = queue.Queue()
        self._pending = 0
        self._preloaded = False
        self._reader = threading.Thread(target=self._read, name="natsray-plot-answers", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls) -> PlotProcess | None:
        """Start the child, or return None: on a one-core machine (it would only take the runs' core)
        or when the interpreter cannot be started. The child imports this process's natsray and
        searches this process's ``sys.path`` for the rest (:func:`_child_path`)."""
        from natsray.study.forks import usable_cpus

        if usable_cpus() < 2:
            return None
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(_child_path())}
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _CHILD],
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

    def _read(self) -> None:
        """The answers, one per job in order, then :class:`_Gone` when the child's stdout ends."""
        with contextlib.suppress(Exception):
            while True:
                self._answers.put(pickle.load(self._process.stdout))  # type: ignore[arg-type]
        self._answers.put(_Gone())
        with contextlib.suppress(OSError):
            self._process.stdout.close()  # type: ignore[union-attr]

    def preload(self) -> None:
        """Let the child import natsray and matplotlib now (it waits for this or its first figure): call
        it when the runs leave a core free (:func:`natsray.study.sweep.run_sweep`'s ``on_cores_free``)."""
        if self._preloaded or self._process.poll() is not None:
            return
        self._preloaded = True
        with contextlib.suppress(OSError, ValueError):
            self._process.stdin.write(GO)  # type: ignore[union-attr]
            self._process.stdin.flush()  # type: ignore[union-attr]

    def submit(self, job: tuple[Any, ...]) -> None:
        """Ask the child for ``plot_anytime(*job)`` (:func:`natsray.study.plots.plot_anytime`)."""
        self._pending += 1
        if self._process.poll() is not None:
            return
        self.preload()
        try:
            _send(self._process.stdin, job)  # type: ignore[arg-type]
        except (OSError, pickle.PicklingError, ValueError, TypeError):
            self.close(wait=0.0)

    def results(self, timeout: float = ANSWER_S) -> list[bool]:
        """Wait up to ``timeout`` seconds in all for the figures submitted since the last call; True
        for each the child wrote, in submission order.

        False for a figure it failed on (its error went to stderr), and for every figure left when
        it is gone or the time is up (the child is then stopped: the caller draws them itself).
        """
        pending, self._pending = self._pending, 0
        deadline = time.monotonic() + timeout
        drawn: list[bool] = []
        while len(drawn) < pending:
            try:
                answer = self._answers.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                answer = _Gone()
            if isinstance(answer, _Gone):
                self._answers.put(answer)  # for later calls: still gone
                self.close(wait=0.0)
                return drawn + [False] * (pending - len(drawn))
            drawn.append(answer is None)
        return drawn

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


class _Gone:
    """The child's answers have ended (it exited, was killed, or was given up on)."""


def _child_path() -> list[str]:
    """The child's ``PYTHONPATH``: this process's ``sys.path`` (relative entries, ``''`` included,
    made absolute: they name this process's working directory, which the child shares), so that it
    imports the same matplotlib and numpy.

    When that search would not find this very natsray first (it was imported from a path since
    removed or put later, or by an editable install's finder), the directory this natsray package
    sits in goes first.
    """
    from importlib.machinery import PathFinder

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = list(dict.fromkeys(os.path.abspath(path) for path in sys.path if isinstance(path, str)))
    found = PathFinder.find_spec("natsray", paths)
    if found is None or found.origin is None or os.path.dirname(found.origin) != package:
        paths.insert(0, os.path.dirname(package))
    return paths


def _send(stream: IO[bytes], value: Any) -> None:
    pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def _serve() -> None:
    """The child: draw each job read from stdin, answer its error (or None)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):  # no os.nice (Windows): the parent's priority
        os.nice(NICENESS)
    jobs, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed while drawing must not mix with the answers
    try:
        from natsray.study.plots import plot_anytime, preload

        preload()
    except Exception as exc:  # the parent draws instead, and meets the same error there
        print(f"natsray: plot process: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    while True:
        try:
            job = pickle.load(jobs)
        except (EOFError, OSError, pickle.UnpicklingError):  # the parent is done (or died mid-job)
            return
        error: str | None = None
        try:
            plot_anytime(*job)
        except Exception as exc:
            print(f"natsray: plot process: {type(exc).__name__}: {exc}", file=sys.stderr)
            error = str(exc) or type(exc).__name__
        _send(answers, error)
