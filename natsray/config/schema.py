"""The experiment config: a tree of frozen dataclasses loaded from YAML.

Top-level sections: ``seed``, ``search_space``, ``strategy``, ``evaluator``, ``budget``,
``resources``, ``engine``, ``ray``, ``output``, and the ``callbacks`` list (:class:`CallbackSpec`
entries, each checked against its class at load). The ``strategy`` and ``evaluator``
sections are parsed into the ``Config`` dataclass of the class they select (by
``strategy.name`` / ``evaluator.type``), so each component is handed only its own
section. ``ExperimentConfig.objectives`` is derived from ``evaluator.objective``.

Every value is checked against its field's type hint (:mod:`natsray.config.typed_yaml`); every
error is a :class:`ConfigError` whose message is one line naming the YAML path (and the
file), e.g. ``x.yaml: strategy.populaton: unknown key (did you mean 'population'?)``.
Relative paths (``evaluator.archive`` / ``table`` / ``data_dir`` / ``extra_csv`` /
``weights_dir``, ``output.dir``, the local paths in ``ray.runtime_env``) are relative to the
current directory; :func:`resolve_paths` makes them absolute and :func:`check_paths` checks
the inputs exist (the CLI does both at load, in ``validate`` as in ``run``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from natsray.callbacks import CallbackSpec
from natsray.config.typed_yaml import ConfigError, describe_value, parse_dataclass
from natsray.plain_data import plain_data
from natsray.records import Objective
from natsray.registry import ComponentError, ComponentRegistry, prepend_import_roots

__all__ = [
    "PATH_FIELDS",
    "BudgetConfig",
    "CallbackSpec",
    "ConfigError",
    "EngineConfig",
    "ExperimentConfig",
    "OutputConfig",
    "RayConfig",
    "ResourcesConfig",
    "SearchSpaceConfig",
    "apply_overrides",
    "check_engine",
    "check_paths",
    "config_data",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "import_roots",
    "load_config",
    "parse_dataclass",
    "read_yaml",
    "resolve_data_paths",
    "resolve_paths",
]


@dataclass(frozen=True)
class SearchSpaceConfig:
    """``search_space``: which space, and how duplicates are treated.

    Attributes:
        name: Only ``nats-tss``.
        dedup: De-duplication at the proposal (``docs/engine.md``): ``canonical`` (default)
            never evaluates two cells computing the same function (6,466 isomorphism classes),
            ``arch`` never the same cell twice (15,625), ``none`` re-evaluates repeats (NATS-Bench's
            protocol). The default is the measured best: ``benchmarks/results/dedup_quality.json``.
    """

    name: Literal["nats-tss"] = "nats-tss"
    dedup: Literal["none", "arch", "canonical"] = "canonical"


@dataclass(frozen=True)
class BudgetConfig:
    """``budget``: the run stops cleanly when ANY given limit is reached (at least one is required)."""

    evaluations: int | None = None
    wall_seconds: float | None = None
    simulated_seconds: float | None = None

    def __post_init__(self) -> None:
        limits = {
            "evaluations": self.evaluations,
            "wall_seconds": self.wall_seconds,
            "simulated_seconds": self.simulated_seconds,
        }
        if all(value is None for value in limits.values()):
            raise ValueError("give at least one of evaluations, wall_seconds, simulated_seconds")
        for name, value in limits.items():
            if value is not None and value <= 0:
                raise ValueError(f"{name}: must be > 0, got {value}")


@dataclass(frozen=True)
class ResourcesConfig:
    """``resources``: the evaluator actors.

    Attributes:
        actors: Number of evaluator actors.
        cpus_per_actor: Ray ``num_cpus`` of each actor (also its torch thread count).
        gpus_per_actor: Ray ``num_gpus`` of each actor (fractions allowed).
        num_cpus: CPUs of a Ray instance started locally (None: all cores).
    """

    actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ValueError(f"actors: must be >= 1, got {self.actors}")
        if self.cpus_per_actor < 0 or self.gpus_per_actor < 0:
            raise ValueError("cpus_per_actor / gpus_per_actor: must be >= 0")


@dataclass(frozen=True)
class EngineConfig:
    """``engine``: how the driver loop schedules work.

    Attributes:
        mode: ``async`` (steady state, tell results as they arrive), ``ordered`` (tell in
            candidate-id order: reproducible for any number of actors), ``simulated``
            (no Ray: simulate ``simulated_workers`` asynchronous workers with an event clock
            driven by each evaluation's benchmark cost).
        simulated_workers: Worker count of ``simulated`` mode.
        batch_size: Candidates per evaluator call; ``None``: 256 per Ray call and 64
            in-process for cheap evaluators, 1 for training (fewer when the default window is
            capped by the budget).
        max_retries: Re-submissions of a candidate whose actor died, before it is
            recorded as failed.
        in_process: Evaluate in the driver process without Ray (cheap evaluators only).
        max_in_flight: Most candidates asked but not yet told at any time (the strategy's
            window). ``None``: ``2 * actors * batch_size`` on Ray, ``batch_size`` in-process,
            ``simulated_workers`` in simulated mode; with ``budget.evaluations`` at most 5 % of
            it (at least 2 per actor). In ``ordered`` mode the trajectory depends only on the seed and this
            window, so fix it to compare runs with different actor counts.
        fail_fast: Stop the run when the first this many evaluations of its start (or of a resume)
            all failed with the same one-line error (a misnamed objective, a bug in a scoring
            function): checkpointed, resumable. 0 turns the rule off.
    """

    mode: Literal["async", "ordered", "simulated"] = "async"
    simulated_workers: int = 1
    batch_size: int | None = None
    max_retries: int = 2
    in_process: bool = False
    max_in_flight: int | None = None
    fail_fast: int = 3

    def __post_init__(self) -> None:
        for name in ("simulated_workers", "batch_size", "max_in_flight"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}: must be >= 1, got {value}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0, got {self.max_retries}")
        if self.fail_fast < 0:
            raise ValueError(f"fail_fast: must be >= 0 (0: off), got {self.fail_fast}")


@dataclass(frozen=True)
class RayConfig:
    """``ray``: where to run (see ``docs/cluster.md``).

    Attributes:
        address: Cluster to join (``HOST:PORT``, ``ray://HOST:PORT``, ``auto``); None starts a
            local Ray unless ``--address`` or ``RAY_ADDRESS`` is given. Never stored in a run
            directory: a resumed run connects where the user is now.
        runtime_env: Ray runtime env of the actors; its local paths (``working_dir``,
            ``py_modules``, a ``pip`` / ``conda`` file) are made absolute and checked at load.
        dashboard_host: Dashboard host of a local Ray.
        include_dashboard: Start the dashboard with a local Ray.
        connect_timeout_s: Seconds to wait for a cluster address to answer before failing.
        resource_wait_s: Seconds a joined cluster (autoscaling) is given to grow until it can
            host ``resources.actors`` actors; a local Ray is checked once.
        actor_start_timeout_s: Seconds the evaluator actors may take to start (placement,
            imports, evaluator setup) before the run fails.
    """

    address: str | None = None
    runtime_env: dict[str, Any] | None = None
    dashboard_host: str = "127.0.0.1"
    include_dashboard: bool = False
    connect_timeout_s: float = 30.0
    resource_wait_s: float = 60.0
    actor_start_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "resource_wait_s", "actor_start_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class OutputConfig:
    """``output``: the run directory, how often the search state is checkpointed, what is drawn.

    Attributes:
        plots: Draw the run's PNG plots when it finishes (``evaluations.csv``, ``best_arch.yaml``
            and the summary are always written). A sweep of hundreds of runs is compared in the
            sweep report's plots; ``plots: false`` saves about a second per run there.
    """

    dir: str = "runs/run"
    checkpoint_every: int = 10_000
    checkpoint_seconds: float = 30.0
    progress: bool = True
    plots: bool = True


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment.

    ``strategy`` is an instance of the selected strategy class's ``Config`` and
    ``evaluator`` of the selected evaluator class's ``Config``. ``objectives`` defaults
    to the evaluator's ``objective`` field. ``callbacks`` are built and called on the driver by
    the engine (:mod:`natsray.callbacks`).
    """

    strategy: Any
    evaluator: Any
    budget: BudgetConfig
    seed: int = 0
    search_space: SearchSpaceConfig = field(default_factory=SearchSpaceConfig)
    objectives: tuple[Objective, ...] = ()
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    callbacks: tuple[CallbackSpec, ...] = ()


PATH_FIELDS: tuple[str, ...] = ("archive", "table", "data_dir", "extra_csv")
"""Evaluator fields naming a file or directory that must exist when the run starts."""

_SECTION_ORDER = (
    "seed",
    "search_space",
    "strategy",
    "evaluator",
    "budget",
    "resources",
    "engine",
    "ray",
    "output",
    "callbacks",
)


def _registry(section: str) -> tuple[str, ComponentRegistry]:
    """The selecting key and the registry of a ``strategy`` / ``evaluator`` section."""
    if section == "strategy":
        from natsray.strategies import REGISTRY as strategies

        return "name", strategies
    from natsray.evaluators import REGISTRY as evaluators

    return "type", evaluators


def _check_selector(section: str, data: Any) -> None:
    """Check that a component section names a component (before anything is imported)."""
    key, registry = _registry(section)
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping with a {key!r} key, got {describe_value(data)}", path=section)
    if key not in data:
        raise ConfigError(
            f"missing required field (one of {', '.join(registry.names())}, or 'package.module:Class')",
            path=f"{section}.{key}",
        )
    name = data[key]
    if not isinstance(name, str):
        raise ConfigError(f"expected a string, got {describe_value(name)}", path=f"{section}.{key}")
    if not registry.is_known(name):
        raise ConfigError(registry.unknown(name), path=f"{section}.{key}")


def _component(section: str, data: Mapping[str, Any]) -> tuple[type, Any]:
    """The class selected by a checked component section, and its parsed ``Config``.

    The section's ``name`` / ``type`` is stored as given (a short name or an import path), whatever
    the ``Config`` declares for it, so a run directory's ``config.yaml`` selects the same class.
    """
    key, registry = _registry(section)
    name = data[key]
    try:
        cls = registry.load(name)
    except ComponentError as exc:
        raise ConfigError(str(exc), path=f"{section}.{key}") from None
    config_cls = cls.Config
    selector = {f.name: f for f in dataclasses.fields(config_cls) if f.init}.get(key)
    if selector is None:
        raise ConfigError(
            f"{name!r}: {config_cls.__qualname__} has no {key!r} field (add `{key}: str = {name!r}`)",
            path=f"{section}.{key}",
        )
    try:
        if selector.default is dataclasses.MISSING and selector.default_factory is dataclasses.MISSING:
            return cls, parse_dataclass(config_cls, data, section)
        parsed = parse_dataclass(
            config_cls, {k: v for k, v in data.items() if k != key}, section, exclude=(key,)
        )
        return cls, dataclasses.replace(parsed, **{key: name})
    except ConfigError:
        raise
    except (TypeError, NameError) as exc:  # a plugin Config with a field type the parser cannot read
        message = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{name!r}: {config_cls.__qualname__}: {message}", path=section) from None
    except ValueError as exc:
        raise ConfigError((str(exc).splitlines() or [""])[0], path=section) from None


def _not_found_hint(message: str, roots: Sequence[str]) -> str:
    """Where a top-level package that ``message`` (an import error's line) says is not found was looked
    for, and how to make it importable; nothing when the message says more already."""
    found = re.search(r"no module named '(\w+)'$", message)
    if found is None:
        return ""
    top = found.group(1)
    fix = f"set ray.runtime_env.working_dir (or PYTHONPATH) to the directory holding {top!r}"
    if not roots:
        return (
            f"; looked for in the installed packages and PYTHONPATH (no ray.runtime_env.working_dir): {fix}"
        )
    if str(Path.cwd()) in roots:  # working_dir: . (or the like), run from elsewhere
        fix = f"run natsray from the directory holding {top!r}, or {fix}"
    return f"; looked for in {', '.join(roots)} (ray.runtime_env) and the installed packages: {fix}"


def import_roots(runtime_env: Mapping[str, Any] | None) -> list[str]:
    """The directories (or ``.whl`` / ``.zip`` files) that make a Ray ``runtime_env``'s local code importable.

    ``working_dir`` itself (Ray runs the actors there), and for each local ``py_modules`` entry the
    directory holding it (a package directory ``lib/mypkg`` is imported as ``mypkg``), or the
    archive itself. Relative paths are relative to the current directory; missing ones are skipped
    (:func:`check_paths` reports them).
    """
    roots = []
    for key, value, _ in _runtime_env_paths(runtime_env or {}):
        path = Path(value).expanduser().resolve()
        if key == "working_dir" and path.is_dir():
            roots.append(str(path))
        elif key.startswith("py_modules["):
            if path.is_dir():
                roots.append(str(path.parent))
            elif path.is_file() and path.suffix in (".whl", ".zip"):
                roots.append(str(path))
    return roots


def _objectives(evaluator: Any, strategy_cls: type, strategy_name: str) -> tuple[Objective, ...]:
    specs = getattr(evaluator, "objective", None)
    if isinstance(specs, str):
        specs = (specs,)
    if not specs:
        raise ConfigError("give at least one objective metric", path="evaluator.objective")
    objectives = []
    for i, spec in enumerate(specs):
        try:
            objectives.append(Objective.parse(spec))
        except ValueError as exc:
            raise ConfigError(str(exc), path=f"evaluator.objective[{i}]") from None
    names = [objective.name for objective in objectives]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        listed = ", ".join(map(repr, repeated))
        raise ConfigError(f"{listed} given more than once", path="evaluator.objective")
    limit = getattr(strategy_cls, "max_objectives", 1)
    if len(objectives) > limit:
        raise ConfigError(
            f"strategy {strategy_name!r} optimises at most {limit} objective(s), got {len(objectives)} "
            f"({', '.join(map(str, objectives))})"
            + ("; use nsga2 for several" if limit == 1 else f"; drop {len(objectives) - limit}"),
            path="evaluator.objective",
        )
    return tuple(objectives)


def check_engine(engine: EngineConfig, evaluator_cls: type, evaluator: Any) -> None:
    """Simulated and in-process engines need a cheap (look-up) evaluator.

    Args:
        engine: The ``engine`` section.
        evaluator_cls: The evaluator class.
        evaluator: Its parsed config (``is_cheap(config)`` decides; a function evaluator is cheap
            when its config says so).

    Raises:
        ConfigError: naming ``engine.mode`` or ``engine.in_process``.
    """
    if evaluator_cls.is_cheap(evaluator):
        return
    evaluator_type = evaluator.type
    if engine.mode == "simulated":
        raise ConfigError(
            f"'simulated' needs a cheap evaluator (benchmark, table, or function with cheap: true), "
            f"not {evaluator_type!r}",
            path="engine.mode",
        )
    if engine.in_process:
        raise ConfigError(
            f"needs a cheap evaluator (benchmark, table, or function with cheap: true), "
            f"not {evaluator_type!r}",
            path="engine.in_process",
        )


def check_gpu_options(resources: ResourcesConfig, evaluator: Any) -> None:
    """An evaluator's GPU-only settings need actors that get a GPU.

    Ray hides the GPUs from an actor that asks for none (``CUDA_VISIBLE_DEVICES`` is set empty), so
    with ``resources.gpus_per_actor: 0`` a training evaluator's ``device: cuda``, ``amp``,
    ``channels_last``, ``cudnn_benchmark`` or ``cuda_graphs`` would fail every candidate in its actor.
    ``natsray validate`` and ``natsray run`` refuse it here, in one line, before Ray starts.

    Raises:
        ConfigError: naming the first such evaluator setting.
    """
    if resources.gpus_per_actor > 0 or not hasattr(evaluator, "gpu_options"):  # a training evaluator's
        return
    wanted = [*(["device"] if getattr(evaluator, "device", None) == "cuda" else []), *evaluator.gpu_options]
    if wanted:
        setting = "'cuda'" if wanted[0] == "device" else "true"
        raise ConfigError(
            f"{setting} needs a GPU in each actor, but resources.gpus_per_actor is 0 (Ray gives an actor "
            "that asks for no GPU none): set resources.gpus_per_actor, e.g. 1 or 0.25",
            path=f"evaluator.{wanted[0]}",
        )


def config_from_dict(data: Any, source: str | None = None) -> ExperimentConfig:
    """Parse and check a raw config mapping (as read from YAML).

    Args:
        data: The mapping with the top-level sections.
        source: Where it came from (a file name): prefixes every error message.

    Raises:
        ConfigError: one line naming the source, the YAML path and what was expected.
    """
    roots: list[str] = []
    try:
        if isinstance(data, Mapping) and "objectives" in data:
            raise ConfigError(
                "not a config key: objectives are set by evaluator.objective", path="objectives"
            )
        sections = {k: v for k, v in data.items() if k != "callbacks"} if isinstance(data, Mapping) else data
        raw = parse_dataclass(
            ExperimentConfig, sections, exclude=("objectives", "callbacks"), also=("callbacks", "sweep")
        )
        runtime_env = raw.ray.runtime_env
        roots = import_roots(runtime_env) if runtime_env else []
        prepend_import_roots(roots)  # user code shipped to the actors is imported from the same place here
        callbacks = _callbacks(data.get("callbacks"))
        _check_selector("strategy", raw.strategy)
        _check_selector("evaluator", raw.evaluator)
        strategy_cls, strategy = _component("strategy", raw.strategy)
        evaluator_cls, evaluator = _component("evaluator", raw.evaluator)
        objectives = _objectives(evaluator, strategy_cls, strategy.name)
        check_engine(raw.engine, evaluator_cls, evaluator)
        check_gpu_options(raw.resources, evaluator)
    except ConfigError as exc:  # a plugin not found: where it was looked for
        hint = _not_found_hint(exc.message, roots)
        raise ConfigError(exc.message + hint, path=exc.path, source=source) from None
    return dataclasses.replace(
        raw, strategy=strategy, evaluator=evaluator, objectives=objectives, callbacks=callbacks
    )


def config_data(data: Any, source: str | None = None, *, resolve: bool = False) -> dict[str, Any]:
    """A raw config as plain data, without importing user code: what a report needs of a run's config.

    The sections of natsray's own are parsed and checked as :func:`config_from_dict` does (defaults
    filled in, so a built-in strategy or evaluator section equals :func:`config_to_dict`'s); a
    ``strategy`` / ``evaluator`` section naming a class by import path or plugin entry point, and the
    ``callbacks`` list, are kept as given (their classes' defaults absent): a finished run or sweep is
    read and reported without its plugin modules. ``ray.address`` is None, as in ``config.yaml``.
    With ``resolve``, its paths are made absolute as :func:`resolve_paths` does.

    Raises:
        ConfigError: one line naming the source and the YAML path of a malformed section.
    """
    try:
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping of config sections, got {describe_value(data)}")
        sections = {k: v for k, v in data.items() if k not in ("callbacks", "objectives")}
        raw = parse_dataclass(
            ExperimentConfig, sections, exclude=("objectives", "callbacks"), also=("callbacks", "sweep")
        )
        parsed: dict[str, Any] = {}
        for section in ("strategy", "evaluator"):
            key, registry = _registry(section)
            given = getattr(raw, section)
            if (
                isinstance(given, Mapping)
                and isinstance(given.get(key), str)
                and given[key] not in registry.builtins
            ):
                parsed[section] = dict(given)  # a plugin's: never imported, nor looked up (it may be gone)
            else:
                _check_selector(section, given)
                parsed[section] = _component(section, given)[1]
    except ConfigError as exc:
        raise exc.with_source(source) from None
    partial = dataclasses.replace(raw, **parsed)
    result = config_to_dict(resolve_paths(partial) if resolve else partial)
    result["ray"]["address"] = None
    if data.get("callbacks") is not None:
        result["callbacks"] = plain_data(data["callbacks"])
    return result


def _callbacks(data: Any) -> tuple[CallbackSpec, ...]:
    """The ``callbacks`` list: each entry ``"package.module:Class"``, a shipped name, or a mapping
    ``{class: ..., <keyword arguments>}``, checked against its class (:meth:`CallbackSpec.parse`)."""
    if data is None:
        return ()
    items = list(data) if isinstance(data, list | tuple) else [data]
    specs = []
    for i, item in enumerate(items):
        try:
            specs.append(CallbackSpec.parse(item))
        except ValueError as exc:
            field_name, sep, message = str(exc).partition(": ")
            if not sep or not (field_name == "class" or (isinstance(item, Mapping) and field_name in item)):
                raise ConfigError(str(exc), path=f"callbacks[{i}]") from None
            path = f"callbacks[{i}].{field_name}" if isinstance(item, Mapping) else f"callbacks[{i}]"
            raise ConfigError(message, path=path) from None  # (a string entry is the class itself)
    return tuple(specs)


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of a raw config with ``KEY.PATH=VALUE`` overrides applied.

    ``VALUE`` is parsed as a YAML scalar or flow list/mapping (``50``, ``true``, ``null``,
    ``[a, b]``); missing intermediate sections are created. Unknown keys are left for
    :func:`config_from_dict` to reject with a did-you-mean.

    Switching a component's class (``--set evaluator.type=table``, ``--set strategy.name=nsga2``)
    drops the section's keys from the file that the new class's ``Config`` does not have (e.g. the
    benchmark's ``archive``); keys given by ``--set`` are never dropped, so a misspelt one is still
    refused.

    Raises:
        ConfigError: an override that is not ``KEY.PATH=VALUE``, whose value is not YAML, or
            that descends into a value that is not a section.
    """
    result = plain_data(data)
    switched: set[str] = set()  # sections whose class an override changed
    given: dict[str, set[str]] = {}  # section -> its keys given by --set
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(part.strip() for part in parts):
            raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. strategy.population=50")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value {text!r} is not valid YAML") from None
        node = result
        for depth, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            elif not isinstance(node[part], dict):
                section = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {item!r}: {section} is {describe_value(node[part])}, not a section")
            node = node[part]
        section = parts[0]
        if len(parts) >= 2:
            given.setdefault(section, set()).add(parts[1])
        selector = (
            len(parts) == 2 and section in ("strategy", "evaluator") and parts[1] == _registry(section)[0]
        )
        if selector and node.get(parts[1]) != value:
            switched.add(section)
        node[parts[-1]] = value
    for section in switched:
        _drop_foreign_keys(result[section], section, given[section])
    return result


def _drop_foreign_keys(data: dict[str, Any], section: str, given: set[str]) -> None:
    """Remove from a component section the keys its (new) class's Config lacks, except ``given``."""
    key, registry = _registry(section)
    name = data.get(key)
    if not isinstance(name, str) or not registry.is_known(name):
        return  # config_from_dict names the unknown class
    try:
        fields = {f.name for f in dataclasses.fields(registry.load(name).Config)}
    except (ComponentError, TypeError, ValueError):
        return  # config_from_dict reports it
    for name in [name for name in data if name not in fields and name not in given]:
        del data[name]


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML config file's top-level mapping; one-line ConfigError naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: expected a mapping with strategy, evaluator and budget sections, "
            f"got {describe_value(data)}"
        )
    return dict(data)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML config (``yaml.safe_load``), apply ``--set`` overrides, parse and check it.

    File existence of the evaluator's paths is not checked here: see :func:`check_paths`.

    Raises:
        ConfigError: one line naming the file, the YAML path and what was expected.
    """
    path = Path(path)
    return config_from_dict(apply_overrides(read_yaml(path), overrides), source=str(path))


def _local(value: Any) -> bool:
    """A string naming a local file or directory (not a URI such as ``s3://`` / ``gcs://``)."""
    return isinstance(value, str) and bool(value) and "://" not in value


def _runtime_env_paths(runtime_env: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """``(key path, value, must exist)`` of the local paths in a Ray runtime env."""
    paths: list[tuple[str, str, bool]] = []
    if _local(runtime_env.get("working_dir")):
        paths.append(("working_dir", runtime_env["working_dir"], True))
    modules = runtime_env.get("py_modules")
    for i, module in enumerate(modules if isinstance(modules, list) else []):
        if _local(module) and ("/" in module or module.startswith(".") or module.endswith((".zip", ".whl"))):
            paths.append((f"py_modules[{i}]", module, True))
    for key, suffixes in (("pip", (".txt",)), ("conda", (".yaml", ".yml"))):
        if _local(runtime_env.get(key)) and runtime_env[key].endswith(suffixes):
            paths.append((key, runtime_env[key], True))
    return paths


def _absolute(value: str, base: str | Path | None = None) -> str:
    """``value`` as an absolute path: relative to ``base`` (default: the current directory)."""
    path = Path(value).expanduser()
    return str((Path(base) / path if base is not None else path).resolve())


def _absolute_runtime_env(runtime_env: Mapping[str, Any], base: str | Path | None = None) -> dict[str, Any]:
    """A copy of ``runtime_env`` with its local paths absolute (relative to ``base``)."""
    result = plain_data(runtime_env)
    for key, value, _ in _runtime_env_paths(result):
        if key.startswith("py_modules["):
            result["py_modules"][int(key[11:-1])] = _absolute(value, base)
        else:
            result[key] = _absolute(value, base)
    return result


_EVALUATOR_PATHS = (*PATH_FIELDS, "weights_dir", "state_dir")
"""The evaluator's fields made absolute: its inputs and the directories it writes."""


def resolve_data_paths(data: Any, base: str | Path) -> Any:
    """Raw config data (a mapping of YAML sections) with the paths :func:`resolve_paths` makes absolute
    made absolute relative to ``base`` instead of the current directory: the evaluator's text values
    of those names and ``ray.runtime_env``'s local paths (a sweep's plan keeps the directory its
    command ran in, so that ``natsray resume`` reads it alike from anywhere). Anything malformed is
    left for :func:`config_from_dict` to report."""
    if not isinstance(data, Mapping):
        return data
    result = dict(data)
    evaluator = data.get("evaluator")
    if isinstance(evaluator, Mapping):
        result["evaluator"] = {
            key: _absolute(value, base) if key in _EVALUATOR_PATHS and isinstance(value, str) else value
            for key, value in evaluator.items()
        }
    ray = data.get("ray")
    if isinstance(ray, Mapping) and isinstance(ray.get("runtime_env"), Mapping):
        result["ray"] = {**ray, "runtime_env": _absolute_runtime_env(ray["runtime_env"], base)}
    return result


def check_paths(config: ExperimentConfig, source: str | None = None) -> None:
    """Check every input path of the config: the evaluator's :data:`PATH_FIELDS` and ``ray.runtime_env``'s.

    A dataset other than ``digits`` needs ``evaluator.data_dir``; an evaluator config with a
    ``check_data()`` method (``type: train``) checks the user's own dataset there.

    Args:
        config: The parsed config.
        source: Its file, prefixed to the error message.

    Raises:
        ConfigError: one line naming the field and the missing path.
    """
    for name in PATH_FIELDS:
        value = getattr(config.evaluator, name, None)
        if value is not None and not Path(value).expanduser().exists():
            raise ConfigError(
                f"{value}: no such file or directory (set it with --set evaluator.{name}=PATH)",
                path=f"evaluator.{name}",
                source=source,
            )
    dataset = getattr(config.evaluator, "dataset", None)
    plugin = bool(getattr(config.evaluator, "dataset_plugin", False))
    needs_data = hasattr(config.evaluator, "data_dir") and dataset not in (None, "digits") and not plugin
    if needs_data and not config.evaluator.data_dir:
        raise ConfigError(
            f"dataset {dataset!r} needs its {'.npz file' if dataset == 'arrays' else 'directory'} "
            "(set it with --set evaluator.data_dir=PATH)",
            path="evaluator.data_dir",
            source=source,
        )
    check_data = getattr(config.evaluator, "check_data", None)
    if callable(check_data):  # the user's own dataset: malformed data is refused before Ray starts
        try:
            check_data()
        except ValueError as exc:  # EvaluatorError is one
            field_name = "evaluator.dataset" if plugin else "evaluator.data_dir"
            raise ConfigError(str(exc), path=field_name, source=source) from None
    for key, value, must_exist in _runtime_env_paths(config.ray.runtime_env or {}):
        if must_exist and not Path(value).expanduser().exists():
            raise ConfigError(
                f"{value}: no such file or directory (relative paths are relative to the current directory)",
                path=f"ray.runtime_env.{key}",
                source=source,
            )


def resolve_paths(config: ExperimentConfig) -> ExperimentConfig:
    """The config with every path made absolute (relative to the current directory).

    The evaluator's :data:`PATH_FIELDS`, ``weights_dir`` and ``state_dir``, and the local paths
    of ``ray.runtime_env``: actors may run elsewhere, and a run directory's ``config.yaml`` must
    mean the same when ``natsray resume`` reads it from another directory. (``output.dir`` is
    kept as written: ``natsray resume RUN_DIR`` is told where the run is.) An evaluator section
    kept as plain data (:func:`config_data`'s of a plugin) has its text values of those names resolved.
    """
    evaluator = config.evaluator
    plain = isinstance(evaluator, Mapping)
    paths = {
        name: _absolute(value)
        for name in _EVALUATOR_PATHS
        if (value := evaluator.get(name) if plain else getattr(evaluator, name, None)) is not None
        and (isinstance(value, str) or not plain)
    }
    ray = config.ray
    if ray.runtime_env:
        ray = dataclasses.replace(ray, runtime_env=_absolute_runtime_env(ray.runtime_env))
    evaluator = {**evaluator, **paths} if plain else dataclasses.replace(evaluator, **paths)
    return dataclasses.replace(config, evaluator=evaluator, ray=ray)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as plain YAML/JSON-able data; ``config_from_dict`` of it gives ``config`` back."""
    data = plain_data(config)
    data["callbacks"] = [spec.to_yaml() for spec in config.callbacks]
    return {name: data[name] for name in _SECTION_ORDER if name != "callbacks" or config.callbacks}


def dump_config(config: ExperimentConfig | Mapping[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML (a run directory's ``config.yaml``); or a config as plain
    data (:func:`config_data`: a sweep's stored run written without its plugin).

    ``ray.address`` is written as null: a run directory does not pin where it ran (a SLURM
    job's Ray head is gone once the job ends), so ``natsray resume`` connects where the user
    is then (``--address``, ``RAY_ADDRESS``, or a local Ray).
    """
    path = Path(path)
    data = config_to_dict(config) if isinstance(config, ExperimentConfig) else plain_data(config)
    data["ray"]["address"] = None
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.dump(data, Dumper=_ConfigDumper, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


class _ConfigDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """``yaml.safe_dump`` (libyaml's where PyYAML has it: same text, ~10x faster: a sweep writes
    configs by the thousand), plus: a Python callable in the config (``natsray.run(evaluator=fn)``) is
    written as ``"<python callable> module.qualname"``, which says what the run used and, when
    read back, refuses to run from the shell with one line (see ``natsray.evaluators.function``)."""

    def represent_undefined(self, data: Any) -> Any:
        if callable(data):
            from natsray.evaluators.function import PYTHON_CALLABLE, callable_name

            return self.represent_str(f"{PYTHON_CALLABLE} {callable_name(data)}")
        return super().represent_undefined(data)


_ConfigDumper.add_representer(None, _ConfigDumper.represent_undefined)
