"""The errors of bad evaluator input and of the user's own code failing, at the bottom of the layering:
the evaluators raise them, and so do the dataset readers they use (``natsray.datasets``), which sit
below them; the engine raises :class:`StrategyError` and the errors of a run that ``engine.fail_fast``
stopped (:class:`FailFastError`). Also the one-line form the user's code failing is reported in
(:func:`failure_line`: the exception and the user's ``file:line``; :func:`component_name`).

Import it as ``natsray.evaluators.EvaluatorError`` (or ``natsray.evaluators.base.EvaluatorError``):
the same class.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from pathlib import Path
from types import TracebackType
from typing import NoReturn

__all__ = [
    "EvaluatorError",
    "EvaluatorSetupError",
    "FailFastConfigError",
    "FailFastError",
    "StrategyError",
    "component_name",
    "failure_line",
    "raise_strategy_error",
    "user_frame",
]

_PACKAGE = str(Path(__file__).resolve().parent) + os.sep
"""The natsray package's directory: frames here are not the user's code."""
_LIBRARIES = tuple(
    dict.fromkeys(
        str(Path(sysconfig.get_paths()[name]).resolve()) + os.sep
        for name in ("stdlib", "platstdlib", "purelib", "platlib")
    )
)
"""Python's standard library and installed packages (numpy, torch, Ray)."""


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


class StrategyError(RuntimeError):
    """A strategy's own code raised: its ``__init__``, ``ask``, ``tell`` or ``state`` (saving or
    restoring it).

    One line naming the class, the method, the exception and where the user's code raised it
    (``strategy mylab.hill:HillClimber: tell raised KeyError: 'missing' (hill.py:41)``); the
    exception itself, with its traceback, is the ``__cause__``. Raised only when the user's code is
    in the traceback (a built-in strategy's own errors pass as they are).
    """


def user_frame(tb: TracebackType | None) -> str | None:
    """``file basename:line`` of the innermost frame of the user's code in ``tb``: outside natsray, the
    standard library and installed packages (None when it has no such frame)."""
    for frame, line in reversed(list(traceback.walk_tb(tb))):
        path = frame.f_code.co_filename
        if not path.startswith(_PACKAGE) and not path.startswith(_LIBRARIES):
            return f"{os.path.basename(path)}:{line}"
    return None


def failure_line(exc: BaseException) -> str:
    """The one-line error of the user's code failing: the exception's type and the first line of its
    message, then where the user's code raised it, e.g. ``KeyError: 'lr' (myscore.py:12)``: the
    innermost frame outside the natsray package, Python's standard library and installed packages
    (none when natsray raised it on its own, e.g. a scoring function's result refused, or a library
    called by natsray did)."""
    line = f"{type(exc).__name__}: {exc}".splitlines()[0]
    where = user_frame(exc.__traceback__)
    return f"{line} ({where})" if where else line


def component_name(cls: type) -> str:
    """``module:Class``: how messages name a strategy or evaluator class (as its config's
    ``strategy.name`` / ``evaluator.type`` can)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def raise_strategy_error(cls: type, method: str, exc: Exception) -> NoReturn:
    """Raise what ``cls.method`` (a strategy's) raising ``exc`` means: a :class:`StrategyError`
    (``strategy mylab.hill:HillClimber: tell raised KeyError: 'missing' (hill.py:41)``, from ``exc``)
    when the user's code is in its traceback, else ``exc`` itself (natsray's own error, e.g. a bad
    config value a built-in strategy refuses)."""
    if user_frame(exc.__traceback__) is None:
        raise exc
    raise StrategyError(f"strategy {component_name(cls)}: {method} raised {failure_line(exc)}") from exc
