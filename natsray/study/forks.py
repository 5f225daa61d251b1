"""A pool of forked worker processes for a sweep's look-up runs: no Ray, no imports, no copies.

A sweep of cheap runs (table or benchmark look-ups, a few milliseconds each) on one machine spends
more on a local Ray's start-up (seconds) and its workers' first lease and imports than on the runs.
Forked from the ``natsray`` process after it has imported the engine and prepared the evaluators'
inputs, a worker starts in about a millisecond and shares those inputs copy-on-write.

The parent hands each idle worker a chunk of run indices (:meth:`Chunks.take`, told the worker's
previous chunk, so that a worker can stay on the runs whose evaluator it has warmed); the worker runs
them with ``work(chunk, report, parent_gone)`` and sends the results of the runs it finished at most
:data:`REPORT_S` apart and with the end of its chunk (one message, and one wake-up of the parent, for
many runs of a few milliseconds each), so the parent records outcomes and the progress bar as they
come; the parent hands the worker its next chunk before recording the last one's results. A worker
with nothing left to run is told to exit and reaped on a thread, so the pool returns as soon as every
run is recorded.

A worker that dies (a signal, the out-of-memory killer) is reaped. Of the runs it had not reported,
those it had finished are recorded from what it left (``recover``: the sweep's store), and the
others are handed out again, one at a time. The first of these counts the death (the run it was
running). A run whose worker died more than ``retries`` times is reported failed with one line.
Every wait is bounded (:data:`POLL_S`); each worker exits when the parent does (it checks between
runs), so an orphan finishes at most its current run.

SIGTERM (``scancel``, ``kill``) or Ctrl-C stops the pool as it stops a run. The workers ignore
SIGINT (Ctrl-C reaches the whole process group); the parent sends each one SIGTERM instead, which
stops its run at the run's next consistent point (checkpointed, as ``natsray run`` does), and the
worker reports what finished. The parent waits up to :data:`STOP_S` for them, kills any left, and
re-raises the interrupt.

Fork is used only where it is safe and cheap: Linux (macOS's system libraries are not fork-safe),
and only for runs whose evaluator is a built-in look-up (no threads, no CUDA in the parent's way).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any, Protocol

__all__ = ["Chunks", "fork_available", "run_forked", "usable_cpus"]

POLL_S = 0.2
"""Longest wait for a worker's message before the parent looks at interrupts and dead workers."""
REPORT_S = 0.05
"""Longest a worker holds the results of runs it finished before sending them (it sends them with the
end of each chunk too)."""
STOP_S = 30.0
"""How long an interrupted pool waits for its workers to checkpoint and exit before killing them."""

Result = dict[str, Any]
Report = Callable[[int, Result], None]
Work = Callable[[list[int], Report, Callable[[], bool]], None]


class Chunks(Protocol):
    """The runs not handed out yet: truthy while some are left; ``take(previous)`` gives the next chunk
    for a worker whose previous chunk was ``previous`` (None: a new worker)."""

    def __bool__(self) -> bool: ...

    def take(self, previous: list[int] | None) -> list[int]: ...


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity (``taskset``, Slurm's ``--cpus-per-task``, a
    container's cpuset) where the system tells it, else ``os.cpu_count()``."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fork_available() -> bool:
    """True where :func:`run_forked` may fork: Linux with ``os.fork``."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class _Worker:
    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid, self.conn = pid, conn
        self.held: list[int] = []  # the chunk handed to it, less the runs it reported
        self.previous: list[int] | None = None  # the last chunk handed to it
        self.leaving = False  # told to exit (no work left)


def run_forked(
    chunks: Chunks,
    work: Work,
    slots: int,
    on_result: Report,
    retries: int,
    check_interrupt: Callable[[], None] = lambda: None,
    recover: Callable[[list[int]], dict[int, Result]] | None = None,
) -> None:
    """Run every chunk on up to ``slots`` forked workers; ``on_result(i, result)`` for each run as it ends.

    Args:
        chunks: The work, taken chunk by chunk as workers become idle.
        work: Runs a chunk in a worker: ``work(chunk, report, parent_gone)`` calls
            ``report(i, result)`` after each run and stops after a run when ``parent_gone()``.
        slots: Most workers at once.
        on_result: Called in this process with each run's result, in the order they end. A run whose
            worker died more than ``retries`` times gets ``{"error": one line, "node": None}``.
        retries: New workers for a run whose worker died while running it.
        check_interrupt: Called between waits; it raises (e.g. a SIGTERM that the caller's handler
            recorded, as an interrupt) to stop the workers as above.
        recover: Called with the runs a dead worker had not reported (in the order handed out); returns
            the results of those it had finished (kept somewhere it wrote them), passed to
            ``on_result`` instead of being run again. None: all run again.
    """
    parent = os.getpid()
    workers: dict[Connection, _Worker] = {}
    again: list[int] = []  # runs of dead workers' chunks, handed out before new chunks
    deaths: Counter[int] = Counter()

    def start() -> None:
        ours, theirs = Pipe()
        with _quiet_fork_warning():
            pid = os.fork()
        if pid == 0:  # the worker: never returns
            ours.close()
            for other in workers:
                other.close()  # a sibling's end kept open here would hide that sibling's exit
            _worker_main(theirs, work, parent)
        theirs.close()
        workers[ours] = _Worker(pid, ours)
        hand_out(workers[ours])

    def hand_out(worker: _Worker) -> None:
        chunk = [again.pop(0)] if again else chunks.take(worker.previous) if chunks else None
        worker.previous = chunk or worker.previous
        worker.held = list(chunk or [])
        worker.leaving = chunk is None
        with contextlib.suppress(OSError):  # it died: its EOF is next
            worker.conn.send(chunk)
        if chunk is None and not stopping:  # idle, told to exit: nothing more to hear from it
            del workers[worker.conn]
            worker.conn.close()
            _reap_later(worker.pid)

    def receive(worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            buried(worker)
            return
        results, chunk_done = message
        for i, _ in results:
            worker.held.remove(i)
        if chunk_done and not worker.leaving:
            hand_out(worker)  # before the results are recorded: the worker runs on meanwhile
        for i, result in results:
            on_result(i, result)

    def buried(worker: _Worker) -> None:
        del workers[worker.conn]
        worker.conn.close()
        status = _reap(worker.pid)
        if worker.held and not stopping and recover is not None:
            finished = recover(worker.held)
            for i in [i for i in worker.held if i in finished]:
                on_result(i, finished[i])
            worker.held = [i for i in worker.held if i not in finished]
        if worker.held and not stopping:
            first, *rest = worker.held
            again[:0] = rest
            deaths[first] += 1
            if deaths[first] > retries:
                error = f"WorkerDied: the worker process running it {status} ({deaths[first]} times)"
                on_result(first, {"error": error, "node": None})
            else:
                again.insert(0, first)

    stopping = False
    try:
        for _ in range(max(1, slots)):
            if not (chunks or again):
                break
            start()
        while workers:
            for conn in wait(list(workers), timeout=POLL_S):
                receive(workers[conn])  # type: ignore[index]
            while (chunks or again) and len(workers) < slots:
                start()  # a replacement for a worker that died
            check_interrupt()
    except BaseException:
        stopping = True
        for worker in workers.values():  # stop the run (at its next consistent point), then exit
            worker.leaving = True
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        while workers and time.monotonic() < deadline:  # record what they finish meanwhile
            for conn in wait(list(workers), timeout=POLL_S):
                receive(workers[conn])  # type: ignore[index]
        for worker in list(workers.values()):  # past the bound: stopped the hard way
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            buried(worker)
        raise


def _reap_later(pid: int) -> None:
    """Reap the worker ``pid``, which was told to exit with nothing left to run, on a thread: the pool
    returns without waiting for its exit (a few ms to unmap what it shares with this process)."""
    threading.Thread(target=_reap, args=(pid,), name=f"natsray-reap-{pid}", daemon=True).start()


def _reap(pid: int) -> str:
    """Wait (bounded: :data:`STOP_S`, then SIGKILL) for the worker ``pid`` to exit; how it ended, in words.

    Woken by the exit itself where Linux gives a process file descriptor (``pidfd_open``, Linux 5.3+);
    elsewhere it looks every 5 ms.
    """
    deadline = time.monotonic() + STOP_S
    try:
        exited: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (an older kernel), or the worker is reaped already
        exited = None
    try:
        while True:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return "ended"
            if done:
                if os.WIFSIGNALED(status):
                    return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
                return f"exited with code {os.WEXITSTATUS(status)}"
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if exited is None:
                time.sleep(0.005)
            else:  # readable once it has exited
                select.select([exited], [], [], POLL_S)
    finally:
        if exited is not None:
            os.close(exited)


def _worker_main(conn: Connection, work: Work, parent: int) -> None:
    """A worker's life: run each chunk it is sent until it is sent None or the parent is gone."""
    code = 0
    pending: list[tuple[int, Result]] = []  # results not sent yet
    sent = [time.monotonic()]  # when results were last sent
    try:
        # Ctrl-C reaches the whole process group: the parent forwards it as SIGTERM, which the run
        # takes at its next consistent point (checkpointed), as it would in the parent
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _exit_with_parent()

        def report(i: int, result: Result) -> None:
            pending.append((i, result))
            if time.monotonic() - sent[0] >= REPORT_S:
                send(chunk_done=False)

        def send(*, chunk_done: bool) -> None:
            conn.send((pending[:], chunk_done))
            pending.clear()
            sent[0] = time.monotonic()

        def parent_gone() -> bool:
            return os.getppid() != parent

        while not parent_gone():
            chunk = conn.recv()
            if chunk is None:
                break
            work(chunk, report, parent_gone)
            send(chunk_done=True)
    except BaseException:  # an interrupt (checkpointed by the run), or the parent's end closed
        code = 1
    finally:
        if pending:  # the runs finished before an interrupt: the parent records them
            with contextlib.suppress(BaseException):
                conn.send((pending, False))
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)  # never the parent's atexit handlers, finally blocks or buffers


def _exit_with_parent() -> None:
    """Linux: SIGTERM this worker when the parent dies (it then checkpoints its run and exits)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def _quiet_fork_warning() -> Any:
    """Python 3.12+ warns on fork in a process with threads (a progress bar's monitor, say); the workers
    never touch what those threads hold (locks of the bar, of the plot process's pipe)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        yield
