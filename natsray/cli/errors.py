"""What stops a command, reported as the command line reports it: one line on stderr and an exit code.

Bad input (:class:`UsageError`, a config, evaluator, cluster or run-directory error, a path the file
system refuses) exits 2; a failure during the command exits 1 (``NATSRAY_DEBUG=1`` raises it, with its
traceback), among them the user's own code failing at set-up (an evaluator's ``__init__`` or ``setup``:
``EvaluatorSetupError``; a strategy's ``__init__``), and a run that ``engine.fail_fast`` stopped
(``FailFastError``: its one line only, there is no traceback of use; one whose evaluations lacked an
objective the config names is bad input, ``FailFastConfigError``, exit 2); Ctrl-C exits 130, naming
how to continue where there is a way (:class:`Interrupted`).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from natsray.cli.pipes import stdout_closed
from natsray.config import ConfigError
from natsray.engine.checkpoint import RunInUseError
from natsray.engine.cluster import ClusterError
from natsray.errors import FailFastError
from natsray.evaluators.base import EvaluatorError
from natsray.experiment.lifecycle import RunDirError

__all__ = [
    "PATH_ERRNOS",
    "Interrupted",
    "RunInterrupted",
    "Stopped",
    "UsageError",
    "exit_code",
    "one_line_failure",
    "one_line_warnings",
]

PATH_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT}
)
"""File-system refusals of a path: bad input (exit 2), unlike a full disk or an I/O error (exit 1)."""


class UsageError(Exception):
    """Bad input from the user (config, arguments, paths): reported in one line, exit code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command that can be continued: carries the one-line hint how."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


class RunInterrupted(Interrupted):
    """Ctrl-C during a run or sweep: carries its directory so the hint can name it."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"continue with 'natsray resume {run_dir}'")
        self.run_dir = run_dir


class Stopped(Exception):
    """A failure that stopped a command which can be continued: the failure and the one-line hint how."""

    def __init__(self, cause: Exception, hint: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.hint = hint


def one_line_warnings() -> None:
    """A plugin shadowed by a built-in, a corrupt line in a sweep's store, or a ``--set`` key that a
    sweep's grid overrides, is reported as ``natsray: warning: ...`` (one line, no source)."""
    import warnings

    from natsray.registry import ShadowedPluginWarning

    show = warnings.showwarning
    if getattr(show, "natsray", False):
        return

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        store = sys.modules.get("natsray.study.store")  # loaded when it warns (imported lazily)
        grid = sys.modules.get("natsray.study.grid")
        one_line = (
            (ShadowedPluginWarning,)
            + ((store.StoreWarning,) if store is not None else ())
            + ((grid.GridOverrideWarning,) if grid is not None else ())
        )
        if issubclass(category, one_line):
            print(f"natsray: warning: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    showwarning.natsray = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def exit_code(command: Callable[[], int]) -> int:
    """Run ``command`` (a command line parsed and executed) and return its exit code; whatever stops
    it becomes one line on stderr and the exit code of its kind (see :mod:`natsray.cli`)."""
    try:
        return command()
    except BrokenPipeError:
        return stdout_closed()
    except Stopped as exc:
        return one_line_failure(exc.cause, exc.hint)
    except (UsageError, ConfigError, EvaluatorError, ClusterError, RunDirError, RunInUseError) as exc:
        print(f"natsray: error: {exc}", file=sys.stderr)  # a FailFastConfigError too
        return 2
    except FailFastError as exc:  # the user's code failed alike N times: the line says what, and what to do
        print(f"natsray: failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno not in PATH_ERRNOS or exc.filename is None:
            return one_line_failure(exc)
        print(f"natsray: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"natsray: interrupted; {exc.hint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("natsray: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return one_line_failure(exc)


def one_line_failure(exc: Exception, hint: str | None = None) -> int:
    """A failure during the command: one line (the traceback under ``NATSRAY_DEBUG=1``), exit code 1."""
    if os.environ.get("NATSRAY_DEBUG", "") not in ("", "0"):
        raise exc
    message = (str(exc).splitlines() or [""])[0]
    then = f"; {hint}" if hint else ""
    print(
        f"natsray: failed: {type(exc).__name__}: {message}{then} (NATSRAY_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return 1
