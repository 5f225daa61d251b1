"""Sweep plans: seeds x grid points of one experiment config, each run in its own directory.

A sweep is an experiment config plus a ``sweep`` section (in the same YAML file, or given
on the command line with ``--seeds`` and ``--grid``)::

    sweep:
      seeds: 0-299
      grid:
        strategy.name: [regularized_evolution, random]     # short form: KEY.PATH: [values]
        dataset:                                           # long form: axis: {label: settings}
          cifar10: {evaluator.dataset: cifar10, budget.simulated_seconds: 20000}
          cifar100: {evaluator.dataset: cifar100, budget.simulated_seconds: 40000}

Every grid point is one combination of one label per axis (the Cartesian product, axes in
order); its settings are applied to the base config like ``--set KEY.PATH=VALUE`` (a mapping
value replaces a whole section, e.g. ``strategy: {name: random}``). Run directories are
``OUT/<axis>=<label>__<axis>=<label>/seed-<N>`` (``OUT/seed-<N>`` without a grid).
The plan is written to ``OUT/sweep.yaml`` so that ``natsray resume OUT`` and
``natsray report OUT`` rebuild it, with the directory the sweep was planned in (``cwd``): relative paths
(``ray.runtime_env.working_dir: .``, ``evaluator.table``) mean the same from any directory, as in a
single run's ``config.yaml``. See ``docs/sweeps.md``.

A ``--set`` key that the grid also sets (the key itself, or a section the grid replaces) is still
checked: refused when it makes the config invalid in every grid point (a misspelt key, a bad value),
otherwise it stays a default that the grid overrides, said by one :class:`GridOverrideWarning`.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from natsray.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    check_paths,
    config_data,
    config_from_dict,
    resolve_data_paths,
    resolve_paths,
)
from natsray.config.typed_yaml import describe_value
from natsray.engine.checkpoint import make_output_dir

__all__ = [
    "MAX_SEEDS",
    "SWEEP_FILE",
    "Axis",
    "GridOverrideWarning",
    "GridPoint",
    "PlannedRun",
    "SweepPlan",
    "invalid_points",
    "load_plan",
    "parse_grid_option",
    "parse_seeds",
    "plan_runs",
    "point_error",
    "sweep_from_config",
    "write_plan",
]

SWEEP_FILE = "sweep.yaml"
_VERSION = 1
_SAFE_LABEL = re.compile(r"^[A-Za-z0-9_.+@-]+$")
MAX_SEEDS = 1_000_000
"""Most seeds one sweep may list: a larger range (``0-4294967295``, a typo) is refused unexpanded."""


class GridOverrideWarning(UserWarning):
    """A ``--set`` key that the sweep's grid sets too: the grid's value wins where it sets it."""


@dataclass(frozen=True)
class Axis:
    """One grid axis: a name and, per label, the settings (``KEY.PATH -> value``) it applies."""

    name: str
    values: tuple[tuple[str, Mapping[str, Any]], ...]


@dataclass(frozen=True)
class GridPoint:
    """One combination of axis labels.

    Attributes:
        labels: ``(axis name, label)`` per axis, in axis order.
        settings: The settings of all its labels, applied in axis order.
    """

    labels: tuple[tuple[str, str], ...]
    settings: Mapping[str, Any]

    @property
    def name(self) -> str:
        """The directory name, ``axis=label__axis=label`` ('' for the single point of a seed-only sweep)."""
        return "__".join(f"{axis}={label}" for axis, label in self.labels)


@dataclass(frozen=True)
class SweepPlan:
    """A sweep: the base config (raw YAML data, ``--set`` applied), its axes and seeds.

    Attributes:
        base: The base experiment as plain data (no ``sweep`` section).
        axes: The grid axes (none: seeds only).
        seeds: The seeds every grid point runs.
        source: Where the base came from (prefixes config errors).
        cwd: The directory its relative paths are relative to (that of the command that planned it;
            None, a plan of an older sweep.yaml: this process's current directory).
    """

    base: Mapping[str, Any]
    axes: tuple[Axis, ...]
    seeds: tuple[int, ...]
    source: str = "sweep"
    cwd: str | None = None

    def points(self) -> list[GridPoint]:
        """The grid points, the Cartesian product of the axes (first axis slowest)."""
        points = []
        for combo in itertools.product(*(axis.values for axis in self.axes)):
            settings: dict[str, Any] = {}
            for _, values in combo:
                settings.update(values)
            labels = tuple((axis.name, label) for axis, (label, _) in zip(self.axes, combo, strict=True))
            points.append(GridPoint(labels, settings))
        return points


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its grid point, seed, directory and config (or why it has none).

    Attributes:
        point: The grid point.
        seed: The seed.
        run_dir: Its run directory.
        config: The run's config (paths resolved, ``output.dir`` = ``run_dir``), None when
            the grid point's config is invalid.
        error: The one-line config error of an invalid grid point.
        data: The run's config as plain data (:func:`~natsray.config.config_data`: no plugin
            imported), when planned with ``typed=False`` (then ``config`` is None); what a report reads.
    """

    point: GridPoint
    seed: int
    run_dir: Path
    config: ExperimentConfig | None
    error: str | None = None
    data: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        """The run's directory relative to the sweep's: ``<point>/seed-<N>`` (``seed-<N>``)."""
        return f"{self.point.name}/seed-{self.seed}" if self.point.name else f"seed-{self.seed}"


def parse_seeds(spec: str | int | Sequence[int], what: str = "--seeds") -> tuple[int, ...]:
    """Seeds from ``0-99`` (inclusive range), ``0,3,5``, a mix such as ``0-4,10``, an int or a list.

    Raises:
        ConfigError: one line naming ``what`` for malformed, negative or repeated seeds, or more than
            :data:`MAX_SEEDS`.
    """
    text = spec if isinstance(spec, str) else repr(spec)
    if isinstance(spec, bool):
        raise ConfigError(f"{what}: {text}: expected seeds like 0-99, 0,3,5 or 0-4,10")
    if isinstance(spec, int):
        spec = text = str(spec)
    ranges: list[tuple[int, int]] = []  # inclusive, expanded once their size is known
    try:
        if isinstance(spec, str):
            for part in spec.split(","):
                first, sep, last = part.strip().partition("-")
                low, high = int(first), int(last) if sep else int(first)
                if 0 <= high < low:
                    reversed_range = f"{part.strip()} is a reversed range"
                    raise ConfigError(f"{what}: {reversed_range}; did you mean {high}-{low}?")
                if low < 0:
                    raise ValueError
                ranges.append((low, high))
        else:
            ranges = [
                (int(seed), int(seed)) for seed in spec if not isinstance(seed, bool) and int(seed) >= 0
            ]
            if len(ranges) != len(spec):
                raise ValueError
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{what}: {text}: expected non-negative seeds like 0-99, 0,3,5 or 0-4,10") from None
    if sum(high - low + 1 for low, high in ranges) > MAX_SEEDS:
        raise ConfigError(f"{what}: {text}: more than {MAX_SEEDS:,} seeds in one sweep")
    seeds = [seed for low, high in ranges for seed in range(low, high + 1)]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{what}: {text}: a seed is listed twice")
    return tuple(seeds)


def _label(value: Any, where: str) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if not _SAFE_LABEL.match(text):
        raise ConfigError(
            f"{where}: label {text!r} cannot name a directory (letters, digits, _ . + @ - only); "
            "use the long form 'axis: {label: {KEY.PATH: value}}'"
        )
    return text


def _axis(name: str, values: Any, where: str) -> Axis:
    if not isinstance(name, str) or not _SAFE_LABEL.match(name):
        raise ConfigError(f"{where}: axis name {name!r}: letters, digits, _ . + @ - only")
    if isinstance(values, Mapping):  # long form: label -> settings
        entries = []
        for label, settings in values.items():
            if not isinstance(settings, Mapping) or not all(isinstance(k, str) for k in settings):
                raise ConfigError(
                    f"{where}.{name}.{label}: expected a mapping of KEY.PATH: value, got {settings!r}"
                )
            entries.append((_label(label, f"{where}.{name}"), dict(settings)))
    elif isinstance(values, list) and values:  # short form: KEY.PATH -> [values]
        entries = [(_label(value, f"{where}.{name}"), {name: value}) for value in values]
    else:
        raise ConfigError(f"{where}.{name}: expected a non-empty list of values or a mapping label: settings")
    labels = [label for label, _ in entries]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}.{name}: a label is listed twice ({', '.join(labels)})")
    return Axis(name, tuple(entries))


def parse_grid_option(option: str) -> Axis:
    """An axis from ``--grid KEY.PATH=v1,v2,...`` (each value parsed as a YAML scalar).

    Raises:
        ConfigError: not ``KEY.PATH=v1,v2``, or a value that is not a YAML scalar.
    """
    key, sep, text = option.partition("=")
    if not sep or not key.strip() or not text.strip():
        raise ConfigError(
            f"--grid {option!r}: expected KEY.PATH=v1,v2,... e.g. strategy.name=random,regularized_evolution"
        )
    values = []
    for item in text.split(","):
        try:
            values.append(yaml.safe_load(item))
        except yaml.YAMLError:
            raise ConfigError(f"--grid {option!r}: value {item!r} is not valid YAML") from None
    return _axis(key.strip(), values, "--grid")


def sweep_from_config(
    data: Mapping[str, Any],
    overrides: Sequence[str] = (),
    grid: Sequence[str] = (),
    seeds: str | None = None,
    source: str = "sweep",
) -> SweepPlan | None:
    """The sweep a raw config describes with its ``sweep`` section and the command line's options.

    Args:
        data: The YAML file's mapping (with or without a ``sweep`` section).
        overrides: ``--set`` items, applied to the base.
        grid: ``--grid`` items: axes appended to those of the section.
        seeds: ``--seeds``: replaces the section's seeds.
        source: The file name, for error messages.

    Returns:
        The plan, or None when neither the section nor the options ask for a sweep.

    Raises:
        ConfigError: one line naming the file and the ``sweep.*`` key (or option) at fault.
    """
    data = dict(data)
    section = data.pop("sweep", None)
    if section is None and not grid and seeds is None:
        return None
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"{source}: sweep: expected a mapping with 'seeds' and/or 'grid', got {describe_value(section)}"
        )
    for key in section:
        if key not in ("seeds", "grid"):
            close = difflib.get_close_matches(str(key), ["seeds", "grid"], n=1)
            hint = f"did you mean {close[0]!r}?" if close else "expected 'seeds' and/or 'grid'"
            raise ConfigError(f"{source}: sweep.{key}: unknown key ({hint})")
    try:
        grid_section = section.get("grid") or {}
        if not isinstance(grid_section, Mapping):
            raise ConfigError("sweep.grid: expected a mapping axis: values")
        axes = [_axis(name, values, "sweep.grid") for name, values in grid_section.items()]
        axes += [parse_grid_option(option) for option in grid]
        names = [axis.name for axis in axes]
        if len(set(names)) != len(names):
            raise ConfigError(f"grid axis listed twice ({', '.join(names)})")
        if seeds is None:
            seed_list = parse_seeds(section.get("seeds", data.get("seed", 0)), "sweep.seeds")
        base = apply_overrides(data, overrides)
    except ConfigError as exc:
        raise exc.with_source(source) from None
    if seeds is not None:
        seed_list = parse_seeds(seeds)  # a command-line option, not a line of the file
    plan = SweepPlan(base, tuple(axes), seed_list, source, os.getcwd())
    for warning in _check_overridden(plan, overrides):
        warnings.warn(warning, GridOverrideWarning, stacklevel=2)
    return plan


def _settings_overrides(settings: Mapping[str, Any]) -> list[str]:
    """Settings as ``--set`` items (JSON is valid YAML flow syntax)."""
    return [f"{key}={json.dumps(value)}" for key, value in settings.items()]


def _point_data(plan: SweepPlan, point: GridPoint) -> dict[str, Any]:
    """A grid point's raw config: the base with the point's settings applied, its relative paths made
    absolute against the directory the sweep was planned in."""
    data = apply_overrides(plan.base, _settings_overrides(point.settings))
    return resolve_data_paths(data, plan.cwd) if plan.cwd is not None else data


def _overriding(item: str, settings: Mapping[str, Any]) -> list[str]:
    """The keys of ``settings`` that override the ``--set`` item's key: the key itself or a section
    holding it (``strategy`` replaces ``strategy.population``)."""
    parts = item.partition("=")[0].strip().split(".")
    return [key for key in settings if key.split(".") == parts[: len(key.split("."))]]


def _check_overridden(plan: SweepPlan, overrides: Sequence[str]) -> list[str]:
    """Check the ``--set`` items against every grid point; the warning line of each item the grid sets.

    Each point's config is checked with ``overrides`` applied after the point's settings (as if they
    won there; as :func:`config_from_dict` checks a run's config): so a misspelt key or a bad value is
    refused even where the grid discards it, while a value that some grid point accepts (a default
    the grid overrides) stays a warning.

    Raises:
        ConfigError: the ``--set`` items make the config invalid in every grid point whose own config
            is valid: the first such point's error.
    """
    points = plan.points()
    items = [item for item in overrides if any(_overriding(item, point.settings) for point in points)]
    if not items:
        return []  # each point's config holds every item: plan_runs checks them
    error: ConfigError | None = None
    for point in points:
        data = _point_data(plan, point)
        try:
            config_from_dict(apply_overrides(data, overrides), source=plan.source)
        except ConfigError as exc:
            try:
                config_from_dict(data)
            except ConfigError:
                continue  # invalid without them too: plan_runs reports it
            error = error or exc
        else:
            break
    else:
        if error is not None:
            raise error
    return [_override_warning(plan, points, item) for item in items]


def _override_warning(plan: SweepPlan, points: Sequence[GridPoint], item: str) -> str:
    """One line: ``--set KEY=V is overridden by the sweep's grid (KEY: v1, v2)``, naming each grid key
    that sets the key (its values) or replaces a section holding it (its grid points)."""
    key = item.partition("=")[0].strip()
    grid: dict[str, list[str]] = {}  # grid key -> its values, or the points setting it to a mapping
    mappings = set()
    for axis in plan.axes:
        for label, settings in axis.values:
            for setting in _overriding(item, settings):
                value = settings[setting]
                if isinstance(value, Mapping):
                    mappings.add(setting)
                text = f"{axis.name}={label}" if isinstance(value, Mapping) else _flow(value)
                if text not in grid.setdefault(setting, []):
                    grid[setting].append(text)
    parts = [
        f"{setting} {'set' if setting == key else 'replaced'} by grid points {', '.join(texts)}"
        if setting in mappings
        else f"{setting}: {', '.join(texts)}"
        for setting, texts in grid.items()
    ]
    setting = sum(1 for point in points if _overriding(item, point.settings))
    where = "" if setting == len(points) else f" in {setting} of {len(points)} grid points"
    return f"--set {item} is overridden by the sweep's grid{where} ({'; '.join(parts)})"


def _flow(value: Any) -> str:
    """A grid value as YAML flow text (``cifar10``, ``20000``, ``[a, b]``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def plan_runs(plan: SweepPlan, out: Path, *, typed: bool = True) -> list[PlannedRun]:
    """Every (grid point, seed) run with its directory and config, grid points in order.

    A grid point whose config is invalid yields runs with ``error`` set instead of a config.

    Args:
        typed: Parse each point's config (:func:`~natsray.config.config_from_dict`: imports its
            strategy and evaluator classes, plugins included). False: give each run its config as
            plain data (:attr:`PlannedRun.data`) instead, importing no user code (for reports).
    """
    runs = []
    for point in plan.points():
        point_dir = out / point.name if point.name else out
        config, data = None, None
        try:
            raw = _point_data(plan, point)
            if typed:
                config = config_from_dict(raw, source=plan.source)
                check_paths(config, plan.source)
                config = resolve_paths(config)
            else:
                data = config_data(raw, source=plan.source, resolve=True)
            error = None
        except (ConfigError, ValueError) as exc:  # (a config parsed before a path was refused: no config)
            config, data, error = None, None, str(exc).splitlines()[0]
        for seed in plan.seeds:
            run_dir = point_dir / f"seed-{seed}"
            run_config, run_data = None, None
            if config is not None:
                output = dataclasses.replace(config.output, dir=str(run_dir))
                run_config = dataclasses.replace(config, seed=seed, output=output)
            if data is not None:
                run_data = {**data, "seed": seed, "output": {**data["output"], "dir": str(run_dir)}}
            runs.append(PlannedRun(point, seed, run_dir, run_config, error, run_data))
    return runs


def point_error(run: PlannedRun, source: str) -> str:
    """The one line of a planned run without config: ``SOURCE: grid point NAME: error`` (the error's
    own ``SOURCE:`` prefix dropped; no grid point named in a seeds-only sweep)."""
    error = str(run.error or "no runs").removeprefix(f"{source}: ")
    return f"{source}: " + (f"grid point {run.point.name}: " if run.point.name else "") + error


def sweep_error(runs: Sequence[PlannedRun], source: str) -> str:
    """The one line that refuses a sweep some of whose runs have no config: the first such run's
    (:func:`point_error`), or ``SOURCE: every grid point: error`` when every grid point has that same error
    (a bad ``--set`` value, say: naming the first point would blame it alone)."""
    failed = [run for run in runs if run.config is None]
    first = failed[0]
    points = {run.point.name for run in runs}
    if (
        len(points) > 1
        and {run.point.name for run in failed} == points
        and len({run.error for run in failed}) == 1
    ):
        return f"{source}: every grid point: " + str(first.error or "no runs").removeprefix(f"{source}: ")
    return point_error(first, source)


def invalid_points(plan: SweepPlan) -> dict[str, str]:
    """The grid points whose config is invalid as the plan gives it (types and values; files are not
    checked; a plugin module not found here is not the config's fault): point name -> one line
    (:func:`point_error`). No resume can run them: their config is re-read from the plan."""
    errors = {}
    for point in plan.points():
        try:
            config_from_dict(_point_data(plan, point), source=plan.source)
        except ConfigError as exc:
            if "no module named" in exc.message:
                continue  # a plugin not importable here (where it runs, the environment): not the config
            run = PlannedRun(point, 0, Path(), None, str(exc).splitlines()[0])
            errors[point.name] = point_error(run, plan.source)
    return errors


def write_plan(plan: SweepPlan, out: Path) -> None:
    """Write ``OUT/sweep.yaml``: the base config, the axes (long form) and the seeds."""
    data = {
        "version": _VERSION,
        "source": plan.source,
        "base": plan.base,
        "grid": {axis.name: {label: dict(settings) for label, settings in axis.values} for axis in plan.axes},
        "seeds": list(plan.seeds),
        "cwd": plan.cwd,
    }
    make_output_dir(out)
    tmp = out / (SWEEP_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(out / SWEEP_FILE)


def load_plan(sweep_dir: Path) -> SweepPlan:
    """Read ``SWEEP_DIR/sweep.yaml`` back.

    Raises:
        ConfigError: one line when the file is missing or not a sweep plan.
    """
    path = sweep_dir / SWEEP_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{sweep_dir}: not a sweep directory (no {SWEEP_FILE})") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML") from None
    if not isinstance(data, Mapping) or data.get("version") != _VERSION or "base" not in data:
        raise ConfigError(f"{path}: not a natsray sweep plan (version {_VERSION})")
    axes = tuple(_axis(name, values, str(path)) for name, values in (data.get("grid") or {}).items())
    seeds = parse_seeds(data["seeds"], f"{path}: seeds")
    return SweepPlan(data["base"], axes, seeds, data.get("source", str(path)), data.get("cwd"))
