"""User callbacks: code of the user's called on the driver as a run (or sweep) makes progress.

:class:`Callback` is public API: subclass it and override the hooks you need (each does nothing by
default). The engine calls them on the driver process, never on Ray actors:

* ``on_run_start(run_dir, config)`` once the run directory is locked and (on resume) the run is
  restored, before the first new evaluation;
* ``on_result(result, index, candidate)`` for each evaluation newly written to the journal, in journal
  order, right after its line is written (``index`` is its 0-based line number in
  ``evaluations.jsonl``);
* ``on_run_end(run_dir, summary)`` once the run has finished and its files are written
  (``summary.json``, and from ``natsray run`` / ``natsray.run`` also ``evaluations.csv``,
  ``best_arch.yaml`` and the plots);
* ``on_run_error(run_dir, error)`` instead of ``on_run_end`` when the run stops unfinished (Ctrl-C, a
  failure): it can be resumed;
* for a sweep, ``on_sweep_start(out, runs)``, ``on_run_end(run_dir, summary)`` per run as each one
  finishes, and ``on_sweep_end(out, outcomes)``.

Faults are contained (:class:`CallbackList`): an exception raised by a hook is logged as ONE warning
line naming the callback, the hook and the error, and the run goes on (the evaluation is already in
the journal, so nothing is lost); later failures of the same callback are counted and reported in one
line when the run ends. ``KeyboardInterrupt`` is not caught.

Names follow Keras' and Ray Tune's ``on_<event>`` hooks; :class:`CallbackSpec` is the ``callbacks``
config key's entry (``"package.module:Class"`` or ``{class: ..., <keyword arguments>}``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from natsray.records import Candidate, Result
from natsray.registry import ComponentError, ComponentRegistry, ImportPathError, import_object

__all__ = [
    "CALLBACKS",
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "Callback",
    "CallbackList",
    "CallbackSpec",
    "callback_class",
]

logger = logging.getLogger("natsray.callbacks")

CALLBACKS: dict[str, str] = {
    "mlflow": "natsray.callbacks.mlflow:MLflowLogger",
    "tensorboard": "natsray.callbacks.tensorboard:TensorBoardLogger",
}
"""Short names of the shipped callbacks (``callbacks: [mlflow]``) -> their import paths."""


class Callback:
    """Base class of user callbacks: override the hooks you need; each does nothing by default.

    Hooks run on the driver, in the order the callbacks are listed. An exception a hook raises is
    logged (one warning line) and the run goes on. A callback built from YAML gets the mapping's
    other keys as keyword arguments of its constructor, so give it a plain ``__init__``.
    """

    def on_run_start(self, run_dir: Path, config: Any) -> None:
        """The run starts or resumes.

        Args:
            run_dir: The run directory (the journal, checkpoint and summary go there).
            config: The run's :class:`~natsray.config.ExperimentConfig`.
        """

    def on_result(self, result: Result, index: int, candidate: Candidate) -> None:
        """An evaluation was written to the journal (called once per journal line, in order).

        On resume, only results journaled from now on are delivered (``index`` continues from the
        journal's length); the lines written before are in ``run_dir / "evaluations.jsonl"``.

        Args:
            result: Its status, ``objectives`` (raw values), report ``metrics``, ``cost_s``, ``error``.
            index: Its 0-based line number in ``evaluations.jsonl`` (the evaluation's step).
            candidate: What was evaluated: ``arch`` (the cell), ``id``, ``parents``, ``seed``, ``budget``.
        """

    def on_run_end(self, run_dir: Path, summary: Mapping[str, Any]) -> None:
        """The run finished; its files are written.

        Args:
            run_dir: The run directory.
            summary: The content of ``summary.json`` (``best_arch``, ``best_objectives``,
                ``evaluations``, ``stop_reason``, ...; ``docs/results.md``).
        """

    def on_run_error(self, run_dir: Path, error: BaseException) -> None:
        """The run stopped unfinished (Ctrl-C, an evaluator or cluster failure); it can be resumed.

        Args:
            run_dir: The run directory.
            error: What stopped it (re-raised after the callbacks ran).
        """

    def on_sweep_start(self, out: Path, runs: int) -> None:
        """A sweep starts (or continues).

        Args:
            out: The sweep directory.
            runs: Runs in the plan (finished ones included).
        """

    def on_sweep_end(self, out: Path, outcomes: Sequence[Any]) -> None:
        """A sweep ended.

        Args:
            out: The sweep directory.
            outcomes: Per planned run, its ``RunOutcome`` (``run_dir``, ``status``: done / skipped /
                failed, ``error``, ``node``, ``evaluations``), in plan order.
        """


ENTRY_POINT_GROUP = "natsray.callbacks"
"""Entry-point group in which installed packages register callbacks by short name."""

REGISTRY = ComponentRegistry("callback", "callbacks[].class", CALLBACKS, ENTRY_POINT_GROUP, Callback)
"""Every callback name: the shipped loggers, then entry points; import paths as given."""


def callback_class(name: str) -> type[Callback]:
    """The callback class named by a short name (:data:`CALLBACKS`, then the entry points of
    ``natsray.callbacks``) or by ``"package.module:Class"``.

    Raises:
        ImportPathError: one line: unknown short name (with a did-you-mean), module or attribute not
            found, a shipped logger whose extra is not installed (naming the ``pip install`` command),
            or a class that is not a :class:`Callback` subclass.
    """
    try:
        target = REGISTRY.target(name)
    except ComponentError as exc:
        raise ImportPathError(str(exc)) from None
    if name in CALLBACKS:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # the optional extra is missing: the module says which
            raise ImportPathError(f"{name!r}: {exc}") from None
        cls = getattr(module, attr)
    else:
        cls = import_object(target)
    if not (isinstance(cls, type) and issubclass(cls, Callback)):
        where = repr(name) if target == name else f"{name!r} ({target})"
        raise ImportPathError(f"{where} is not a subclass of natsray.callbacks.Callback")
    return cls


@dataclass(frozen=True)
class CallbackSpec:
    """One entry of the ``callbacks`` config key: which class, and its constructor's keyword arguments.

    Attributes:
        target: A short name (``mlflow``, ``tensorboard``) or ``"package.module:Class"``.
        kwargs: Keyword arguments of the class's constructor (the mapping's other keys).
    """

    target: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, item: Any) -> CallbackSpec:
        """From YAML: ``"pkg.mod:Class"`` or ``{class: "pkg.mod:Class", <kwargs>}``; checked against
        the class (importable, a :class:`Callback`, keyword arguments its constructor accepts).

        Raises:
            ValueError: one line, ``"class: ..."`` or ``"<kwarg>: ..."`` naming the bad key.
        """
        if isinstance(item, str):
            target, kwargs = item, {}
        elif isinstance(item, Mapping):
            if "class" not in item:
                raise ValueError("class: missing required field (a shipped name or 'package.module:Class')")
            target, kwargs = item["class"], {str(k): v for k, v in item.items() if k != "class"}
            if not isinstance(target, str):
                raise ValueError(f"class: expected a string, got {target!r}")
        else:
            raise ValueError(
                f"expected 'package.module:Class' or a mapping with a 'class' key, got {type(item).__name__}"
            )
        try:
            callback = callback_class(target)
        except ImportPathError as exc:
            raise ValueError(f"class: {exc}") from None
        _check_kwargs(callback, kwargs)
        return cls(target, kwargs)

    def to_yaml(self) -> str | dict[str, Any]:
        """The YAML form :meth:`parse` reads back."""
        return {"class": self.target, **self.kwargs} if self.kwargs else self.target

    def build(self) -> Callback:
        """An instance: ``callback_class(target)(**kwargs)``.

        Raises:
            ValueError: one line naming the callback when the class cannot be imported or built.
        """
        try:
            return callback_class(self.target)(**self.kwargs)
        except ImportPathError as exc:
            raise ValueError(f"callbacks: {exc}") from None
        except Exception as exc:
            raise ValueError(f"callbacks: {self.target}(...) raised {type(exc).__name__}: {exc}") from None


def _check_kwargs(callback: type, kwargs: Mapping[str, Any]) -> None:
    """Keyword arguments the constructor does not take: ``ValueError("<name>: unknown key ...")``."""
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # no introspectable signature: the constructor will tell
        return
    params = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(names) or 'none'}"
            raise ValueError(f"{key}: unknown key ({hint})")
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"class: {callback.__name__}: {exc}") from None


class CallbackList:
    """Calls each callback's hook in order; a hook's exception is logged, never raised.

    The first failure of a callback is one warning line on the ``natsray.callbacks`` logger
    (``callback <Class>.<hook> raised <Error>: <message>; the run goes on``); its later failures are
    counted and reported in one line at :meth:`run_end` / :meth:`run_error` / :meth:`sweep_end`.

    Args:
        callbacks: The callbacks, called in this order.
    """

    def __init__(self, callbacks: Sequence[Callback] = ()) -> None:
        self.callbacks = list(callbacks)
        self._failures: dict[int, int] = {}

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def _call(self, hook: str, *args: Any) -> None:
        for position, callback in enumerate(self.callbacks):
            try:
                getattr(callback, hook)(*args)
            except Exception as exc:
                failures = self._failures[position] = self._failures.get(position, 0) + 1
                if failures == 1:
                    message = (str(exc).strip().splitlines() or [""])[0]
                    logger.warning(
                        "callback %s.%s raised %s: %s; the run goes on (later failures of this callback "
                        "are counted)",
                        type(callback).__name__,
                        hook,
                        type(exc).__name__,
                        message,
                    )

    def _report(self) -> None:
        for position, failures in sorted(self._failures.items()):
            if failures > 1:
                logger.warning(
                    "callback %s raised %d times in all", type(self.callbacks[position]).__name__, failures
                )
        self._failures.clear()

    def run_start(self, run_dir: Path, config: Any) -> None:
        self._call("on_run_start", run_dir, config)

    def result(self, result: Result, index: int, candidate: Candidate) -> None:
        self._call("on_result", result, index, candidate)

    def run_end(self, run_dir: Path, summary: Mapping[str, Any], *, report: bool = True) -> None:
        self._call("on_run_end", run_dir, summary)
        if report:
            self._report()

    def run_error(self, run_dir: Path, error: BaseException) -> None:
        self._call("on_run_error", run_dir, error)
        self._report()

    def sweep_start(self, out: Path, runs: int) -> None:
        self._call("on_sweep_start", out, runs)

    def sweep_end(self, out: Path, outcomes: Sequence[Any]) -> None:
        self._call("on_sweep_end", out, outcomes)
        self._report()
