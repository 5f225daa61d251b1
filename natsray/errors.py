"""The error of bad evaluator input, at the bottom of the layering: the evaluators raise it, and so do
the dataset readers they use (``natsray.datasets``), which sit below them; :func:`failure_line`, the
one-line form of an exception the user's code raised; and the errors of a run that ``engine.fail_fast``
stopped (:class:`FailFastError`).

Import it as ``natsray.evaluators.EvaluatorError`` (or ``natsray.evaluators.base.EvaluatorError``):
the same class.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from pathlib import Path
from types import TracebackType

__all__ = ["EvaluatorError", "EvaluatorSetupError", "FailFastConfigError", "FailFastError", "failure_line"]


class EvaluatorError(ValueError):
    """Bad evaluator configuration or input (missing archive, malformed dataset, unknown metric).

    Its message is one line naming the field, path or value and what was expected.
    """


class EvaluatorSetupError(RuntimeError):
    """An evaluator's own code raised while it was being built: its ``__init__`` or ``setup``.

    One line naming the class, the method and the exception
    (``evaluator mylab.evals:Broken: __init__ raised KeyError: 'licence'``); the exception itself,
    with its traceback, is the ``__cause__`` (from a Ray actor: its traceback as text). Not bad
    input (an :class:`EvaluatorError` raised there is passed on as it is): the CLI reports it as a
    failure, exit code 1, and ``NATSRAY_DEBUG=1`` shows the traceback.
    """


class FailFastError(RuntimeError):
    """A run stopped by ``engine.fail_fast``: the first N evaluations of its start (or of a resume) all
    failed with the same one-line error, so the rest of its budget would most likely fail alike.

    The run is checkpointed (every finished evaluation journaled; evaluations asked but not run are
    run by ``natsray resume``). Its message is one line: the error, that the first N evaluations all
    failed with it, and what to do. The CLI exits 1 (``natsray: failed: ...``).

    Attributes:
        error: The evaluations' one-line error, as journaled.
        count: N (``engine.fail_fast``).
        run_dir: The run directory.
    """

    def __init__(self, message: str, *, error: str, count: int, run_dir: str) -> None:
        super().__init__(message)
        self.error, self.count, self.run_dir = error, count, run_dir


class FailFastConfigError(FailFastError, EvaluatorError):
    """A :class:`FailFastError` whose error is a config mismatch: the evaluator does not return an
    objective the config names (or ``evaluator.cost_metric``). Bad input, hence also an
    :class:`EvaluatorError` (a ``ValueError``): the CLI exits 2 with
    ``natsray: error: evaluator.objective: ...``."""


_PACKAGE = str(Path(__file__).resolve().parent) + os.sep
"""The natsray package's directory: frames here are not the user's code."""
_LIBRARIES = tuple(
    dict.fromkeys(
        str(Path(sysconfig.get_paths()[name]).resolve()) + os.sep
        for name in ("stdlib", "platstdlib", "purelib", "platlib")
    )
)
"""Python's standard library and installed packages (numpy, torch, Ray)."""


def _user_frame(tb: TracebackType | None) -> str | None:
    """``file basename:line`` of the innermost frame of the user's code in ``tb``: outside natsray, the
    standard library and installed packages (None when it has no such frame)."""
    for frame, line in reversed(list(traceback.walk_tb(tb))):
        path = frame.f_code.co_filename
        if not path.startswith(_PACKAGE) and not path.startswith(_LIBRARIES):
            return f"{os.path.basename(path)}:{line}"
    return None


def failure_line(exc: BaseException) -> str:
    """The one-line error of a failed evaluation: the exception's type and the first line of its
    message, then where the user's code raised it, e.g. ``KeyError: 'lr' (myscore.py:12)``: the
    innermost frame outside the natsray package, Python's standard library and installed packages
    (none when natsray raised it on its own, e.g. a scoring function's result refused, or a library
    called by natsray did)."""
    line = f"{type(exc).__name__}: {exc}".splitlines()[0]
    where = _user_frame(exc.__traceback__)
    return f"{line} ({where})" if where else line
