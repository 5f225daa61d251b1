"""``type: function``: score cells with the user's own function, on Ray actors or in-process.

The function is named by an import path in YAML (``function: "mypkg.train:score_cell"``) or given
as a Python callable to :func:`natsray.run` (shipped to the actors by Ray's serialisation,
cloudpickle). It is called once per candidate::

    def score_cell(arch: Arch, context: ScoringContext) -> Mapping[str, float]:
        ...
        return {"accuracy": 91.3, "train_seconds": 12.0}

The keys named in ``evaluator.objective`` are the objectives, every other key is a report metric.
A function that raises, returns a non-mapping, misses an objective key or returns a NaN/inf value
gives a ``FAILED`` evaluation with a one-line message (the run goes on); an actor that dies is
replaced and its candidate retried, as for the built-in evaluators. See ``docs/extending.md``.
"""

from __future__ import annotations

import functools
import numbers
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from natsray.evaluators.base import BaseEvaluator, EvaluatorError, Score
from natsray.records import Candidate, checked_number, missing_cost, missing_objectives
from natsray.registry import ImportPathError, import_object, is_import_path
from natsray.search_space import Arch

__all__ = [
    "PYTHON_CALLABLE",
    "FunctionConfig",
    "FunctionEvaluator",
    "ScoringContext",
    "callable_name",
    "resume_command",
    "resumes_from_python",
]

PYTHON_CALLABLE = "<python callable>"
"""How a run directory's ``config.yaml`` writes a function given as a Python object (it has no
import path): ``"<python callable> module.qualname"``. Such a config cannot be run from the shell;
``natsray.load_run(DIR).resume(evaluator=fn)`` continues the run."""


def callable_name(function: Callable[..., Any]) -> str:
    """``module.qualname`` of a callable (``__main__.<lambda>`` for a lambda typed in a notebook)."""
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"


def resumes_from_python(evaluator: Any) -> bool:
    """Whether a run whose ``evaluator`` section (a parsed config's) is this continues from Python only: it
    scores with a Python object given to ``natsray.run(evaluator=...)``, which its ``config.yaml`` writes as
    ``<python callable> ...`` and ``natsray resume`` therefore refuses (:class:`FunctionConfig`)."""
    return isinstance(evaluator, FunctionConfig) and not isinstance(evaluator.function, str)


def resume_command(evaluator: Any, run_dir: str | Path) -> str:
    """How the run in ``run_dir`` (its ``evaluator`` section) continues, as messages name it:
    ``'natsray resume DIR'``, or ``natsray.load_run('DIR').resume(evaluator=...)`` where only Python
    can (:func:`resumes_from_python`)."""
    if resumes_from_python(evaluator):
        return f"natsray.load_run({str(run_dir)!r}).resume(evaluator=...)"
    return f"'natsray resume {run_dir}'"


class _Pickled:
    """A callable pickled (cloudpickle) on the driver, loaded in the actor's :meth:`FunctionEvaluator.setup`:
    a function whose module the actor cannot import fails there, in one line, not inside Ray."""

    def __init__(self, payload: bytes, name: str) -> None:
        self.payload, self.name = payload, name

    def load(self) -> Callable[..., Any]:
        from ray import cloudpickle

        try:
            return cloudpickle.loads(self.payload)
        except ModuleNotFoundError as exc:
            raise EvaluatorError(
                f"evaluator.function: {self.name} cannot be loaded on this Ray worker: no module named "
                f"{exc.name!r} here (ship it with ray.runtime_env working_dir / py_modules, or install it)"
            ) from None
        except Exception as exc:
            raise EvaluatorError(
                f"evaluator.function: {self.name} cannot be loaded on this Ray worker: "
                f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            ) from None

    def __repr__(self) -> str:
        return f"{PYTHON_CALLABLE} {self.name}"


@dataclass(frozen=True)
class FunctionConfig:
    """``evaluator`` section of ``type: function``.

    Attributes:
        type: ``function``.
        function: ``"package.module:function"`` (imported when the config is loaded, on the driver,
            and again on each actor), or, from Python, the callable itself. Called as
            ``function(arch, context) -> Mapping[str, float]``.
        params: Anything the function needs (read-only ``context.params``).
        objective: The returned keys the search optimises (``name`` or ``name:max|min``).
        cheap: The function takes microseconds to milliseconds and depends on the cell only (not
            on ``context.seed``): candidates go to it in batches of up to 256, each cell (and
            budget) is scored once and repeats answered from memory, and ``engine.in_process`` /
            ``engine.mode: simulated`` are allowed. Default false: one candidate per call, as
            training.
        cost_metric: The returned key holding the evaluation's cost in seconds (the simulated
            clock, ``budget.simulated_seconds``); default the measured seconds of the call.
        budget: ``context.budget`` of a candidate without its own (a multi-fidelity strategy,
            ``asha_evolution``, gives each candidate its rung's budget).
        device: ``context.device``: ``auto`` (``cuda`` when Ray gave the actor a GPU, i.e.
            ``resources.gpus_per_actor > 0``, else ``cpu``), ``cpu`` or ``cuda``.
        C: Channels of the first stage of ``context.model`` (NATS: 16).
        N: Cells per stage of ``context.model`` (NATS: 5).
        num_classes: Output size of ``context.model``.
        directory: Parent of the per-candidate directories ``context.directory``
            (``<directory>/<candidate id>``); default ``<run dir>/candidates``.
    """

    type: Literal["function"] = "function"
    function: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    objective: tuple[str, ...] = ("score",)
    cheap: bool = False
    cost_metric: str | None = None
    budget: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    C: int = 16
    N: int = 5
    num_classes: int = 10
    directory: str | None = None

    def __post_init__(self) -> None:
        function = self.function
        if isinstance(function, str):
            if function.startswith(PYTHON_CALLABLE):
                name = function[len(PYTHON_CALLABLE) :].strip() or "a Python callable"
                raise ValueError(
                    f"function: this run scores cells with {name}, a Python object given to "
                    "natsray.run(evaluator=...), which a config file cannot name; continue it from Python: "
                    "natsray.load_run(RUN_DIR).resume(evaluator=FUNCTION)"
                )
            if not is_import_path(function):
                raise ValueError(f"function: {function!r} is not an import path 'package.module:function'")
            try:
                obj = import_object(function)
            except ImportPathError as exc:
                raise ValueError(f"function: {exc}") from None
            if not callable(obj):
                kind = type(obj).__name__
                article = "an" if kind[:1].lower() in "aeiou" else "a"
                raise ValueError(f"function: {function!r} is {article} {kind}, not a callable")
        elif function is None:
            raise ValueError(
                "function: missing: give 'package.module:function' (or, from Python, a callable)"
            )
        elif not callable(function) and not isinstance(function, _Pickled):
            raise ValueError(
                f"function: expected 'package.module:function' or a callable, got {type(function).__name__}"
            )
        for name in ("C", "N", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: must be a positive int, got {value!r}")
        if self.budget is not None and (not isinstance(self.budget, int) or self.budget < 1):
            raise ValueError(f"budget: must be a positive int or null, got {self.budget!r}")

    @property
    def objective_names(self) -> tuple[str, ...]:
        """The objectives' metric names (``accuracy:max`` -> ``accuracy``)."""
        return tuple(spec.partition(":")[0] for spec in self.objective)

    @property
    def function_name(self) -> str:
        """The import path, or ``module.qualname`` of a callable."""
        function = self.function
        if isinstance(function, str):
            return function
        if isinstance(function, _Pickled):
            return function.name
        return callable_name(function)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to a Ray actor) with a callable pickled apart, loaded in the actor's setup."""
        state = dict(self.__dict__)
        function = state["function"]
        if not isinstance(function, str | _Pickled):
            from ray import cloudpickle

            state["function"] = _Pickled(cloudpickle.dumps(function), callable_name(function))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class ScoringContext:
    """What the scoring function is told about one candidate (the second argument).

    Attributes:
        candidate_id: The candidate's id in the run (0, 1, 2, ...); a retried candidate keeps it.
        seed: Seed for everything random in this evaluation (data order, initialisation): derived
            from the run seed and the id, so a result does not depend on the actor that computed it.
        budget: The fidelity to evaluate at (epochs, steps, ...): the candidate's own budget (a
            multi-fidelity strategy's, e.g. ``asha_evolution``'s rung), else ``evaluator.budget``
            (None when neither is set).
        device: ``"cuda"`` or ``"cpu"``: where the function should compute (``evaluator.device``).
        params: ``evaluator.params``, read-only.
        worker: ``host:pid`` of the process calling the function.
    """

    candidate_id: int
    seed: int
    budget: int | None
    device: str
    params: Mapping[str, Any]
    worker: str
    arch: Arch = field(repr=False)
    network: tuple[int, int, int] = field(default=(16, 5, 10), repr=False)
    """``(C, N, num_classes)`` of :attr:`model`."""
    parent_directory: str | None = field(default=None, repr=False)

    @functools.cached_property
    def directory(self) -> Path:
        """``<run dir>/candidates/<candidate id>``, created on first access: for the candidate's
        weights and checkpoints (a retried candidate finds what its earlier attempt saved).

        Raises:
            EvaluatorError: outside a run (no ``evaluator.directory``).
        """
        if self.parent_directory is None:
            raise EvaluatorError("context.directory: no run directory (set evaluator.directory)")
        path = Path(self.parent_directory) / str(self.candidate_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @functools.cached_property
    def model(self) -> Any:
        """The cell's NATS-Bench network (:func:`natsray.models.build_model` with ``evaluator.C`` /
        ``N`` / ``num_classes``), initialised from :attr:`seed` and on :attr:`device`; built on
        first access (imports torch then), the same object afterwards."""
        C, N, num_classes = self.network
        return self.build_model(C=C, N=N, num_classes=num_classes)

    def build_model(self, *, C: int = 16, N: int = 5, num_classes: int = 10) -> Any:
        """A fresh network of the cell, initialised from :attr:`seed`, on :attr:`device` (torch's
        global RNG is left untouched)."""
        from natsray.evaluators.costs import seeded_model

        return seeded_model(self.arch, self.seed, C=C, N=N, num_classes=num_classes).to(self.device)


def _device(setting: str) -> str:
    """``auto``: ``cuda`` in a Ray worker that was assigned a GPU, else ``cpu``."""
    if setting != "auto":
        return setting
    ray = sys.modules.get("ray")  # never import Ray just to ask
    if ray is None or not ray.is_initialized():
        return "cpu"
    try:
        gpus = ray.get_runtime_context().get_assigned_resources().get("GPU")
    except AssertionError:  # the driver process (engine.in_process): Ray assigned it nothing
        return "cpu"
    return "cuda" if gpus else "cpu"


def _as_returned(value: Any, number: float) -> float | int:
    """A returned number as recorded: an int where the function returned an integer (Python, numpy or
    torch: ``n_params`` stays ``33660``, not ``33660.0``), else its float."""
    if isinstance(value, float):
        return number
    if isinstance(value, numbers.Integral):
        return int(value)
    item = getattr(value, "item", None)  # a torch (or other) scalar
    if item is not None:
        try:
            plain = item()
        except Exception:
            return number
        if type(plain) is int:
            return plain
    return number


class FunctionEvaluator(BaseEvaluator):
    """Calls ``config.function(arch, context)`` per candidate and checks what it returns."""

    Config = FunctionConfig
    cheap: ClassVar[bool] = False

    def __init__(self, config: FunctionConfig, shared: Any = None) -> None:
        super().__init__(config, shared)
        self.function: Callable[..., Any] | None = None

    @classmethod
    def is_cheap(cls, config: FunctionConfig) -> bool:
        return bool(config.cheap)

    def per_cell(self) -> bool:
        return bool(self.config.cheap)

    @classmethod
    def for_run(cls, config: FunctionConfig, run_dir: Path) -> FunctionConfig:
        """Per-candidate directories in ``<run dir>/candidates`` by default (absolute: actors may run
        in another directory)."""
        if config.directory is None:
            config = replace(config, directory=str(Path(run_dir).resolve() / "candidates"))
        return config

    def setup(self) -> None:
        """Import (or unpickle) the function here, on the actor.

        Raises:
            EvaluatorError: one line naming the module, when the function cannot be imported in
                this process (it was importable on the driver but is not shipped to the actors).
        """
        config: FunctionConfig = self.config
        function = config.function
        if isinstance(function, str):
            try:
                function = import_object(function)
            except ImportPathError as exc:
                raise EvaluatorError(
                    f"evaluator.function: {exc} on this Ray worker (imported on the driver; ship it with "
                    "ray.runtime_env working_dir / py_modules, or install it where the actors run)"
                ) from None
        elif isinstance(function, _Pickled):
            function = function.load()
        self.function = function
        self.device = _device(config.device)
        self.params = MappingProxyType(dict(config.params))

    def score(self, candidate: Candidate) -> Score:
        """Call the function; its mapping checked and split into objectives and metrics."""
        if self.function is None:
            self.setup()
        config: FunctionConfig = self.config
        context = ScoringContext(
            candidate_id=candidate.id,
            seed=candidate.seed,
            budget=config.budget if candidate.budget is None else candidate.budget,
            device=self.device,
            params=self.params,
            worker=self.worker,
            arch=candidate.arch,
            network=(config.C, config.N, config.num_classes),
            parent_directory=config.directory,
        )
        start = time.perf_counter()
        values = self.function(candidate.arch, context)  # type: ignore[misc]
        seconds = time.perf_counter() - start
        name = config.function_name
        if not isinstance(values, Mapping):
            raise EvaluatorError(
                f"{name} returned {type(values).__name__}, expected a mapping of metric name -> number"
            )
        objective_names = config.objective_names
        missing = [key for key in objective_names if key not in values]
        if missing:
            raise missing_objectives(name, missing, values)
        metrics: dict[str, float | int | None] = {}
        for key, value in values.items():
            if key in objective_names:
                number = checked_number(value, f"objective {key!r}", name, finite=True)
            elif value is None:
                metrics[str(key)] = None
                continue
            else:
                number = checked_number(value, repr(key), name, finite=True)
            metrics[str(key)] = _as_returned(value, number)
        objectives = {key: metrics[key] for key in config.objective_names}
        cost = seconds
        if config.cost_metric is not None:
            if metrics.get(config.cost_metric) is None:
                raise missing_cost(name, config.cost_metric)
            cost = metrics[config.cost_metric]  # type: ignore[assignment]
        return Score(objectives=objectives, metrics=metrics, cost_s=cost)
