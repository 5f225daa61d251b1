"""The user's inputs read and checked before a command does anything: seeds, configs (loaded,
overridden, pre-flighted), run directories, output paths. Bad input becomes a :class:`UsageError`."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from natsray.cli.errors import UsageError
from natsray.config import ConfigError, ExperimentConfig, apply_overrides, read_yaml
from natsray.evaluators.base import EvaluatorError
from natsray.experiment.lifecycle import checked_config

__all__ = [
    "existing_dir",
    "load_config",
    "parse_seeds",
    "preflight_config",
    "reading_inputs",
    "with_address",
    "writable",
]


def parse_seeds(spec: str) -> list[int]:
    """Seeds from ``0-99`` (inclusive range), ``0,3,5`` or a mix such as ``0-4,10``."""
    from natsray.study.grid import parse_seeds as parse

    try:
        return list(parse(spec))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load, parse and check a config including its paths, made absolute; bad input becomes a UsageError."""
    try:
        return checked_config(apply_overrides(read_yaml(Path(path)), overrides), str(path))
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None


def preflight_config(config: ExperimentConfig, address: str | None, source: str | Path) -> Any:
    """:func:`~natsray.engine.preflight.preflight` (what the run would refuse, before Ray starts and
    before any file is made): a refusal is a UsageError naming the config; warnings go to stderr."""
    from natsray.engine.preflight import preflight

    try:
        checked = preflight(config, address=address)
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None
    for warning in checked.warnings:
        print(f"natsray: warning: {warning}", file=sys.stderr)
    return checked


def with_address(config: ExperimentConfig, address: str | None) -> ExperimentConfig:
    """The config with ``ray.address`` set to ``address`` (``None``: RAY_ADDRESS or a local Ray)."""
    return dataclasses.replace(config, ray=dataclasses.replace(config.ray, address=address))


def existing_dir(path: str, what: str) -> Path:
    """``path`` as a directory that exists (a sweep's run is first written from the sweep's store)."""
    directory = Path(path)
    if directory.is_dir():
        return directory
    sweep_dir = _sweep_of(directory) if what == "run" else None
    if sweep_dir is None:
        raise UsageError(f"{path}: no such {what} directory")
    if not _from_sweep_store(sweep_dir, directory):
        raise UsageError(
            f"{path}: no such run directory, and the sweep {sweep_dir} has no finished run of that name "
            f"(a run not finished yet: natsray resume {sweep_dir})"
        )
    return directory


def writable(path: Path, option: str, *, directory: bool = True) -> None:
    """Refuse an output path that cannot be written: one line naming it and what was expected.

    ``directory``: the path is a directory, else a file to write. Nothing is left behind: folders
    made to try are removed again.
    """
    if directory and path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file, expected a directory")
    if not directory and path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, expected a file to write")
    folder = path if directory else path.parent
    missing, existing = [], folder
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, expected a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot create directory {folder} ({exc.strerror})") from None
    writable = os.access(folder, os.W_OK | os.X_OK)
    for made in missing:  # deepest first
        made.rmdir()
    if not writable:
        raise UsageError(f"{option} {path}: directory {folder} is not writable")


@contextlib.contextmanager
def reading_inputs(what: str) -> Iterator[None]:
    """A command whose ValueErrors are all about the files the user named: each is bad input."""
    try:
        yield
    except (UsageError, ConfigError, EvaluatorError):
        raise
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}" if what else str(exc)) from None


def _sweep_of(run_dir: Path) -> Path | None:
    """The sweep directory a run's path lies in (``OUT/seed-N``, ``OUT/POINT/seed-N``), if any."""
    from natsray.study.grid import SWEEP_FILE

    return next((folder for folder in run_dir.parents[:2] if (folder / SWEEP_FILE).is_file()), None)


def _from_sweep_store(sweep_dir: Path, run_dir: Path) -> bool:
    """Write a sweep's run directory from the sweep's store, where the run finished (docs/sweeps.md);
    False when the store has no such finished run."""
    from natsray.study.store import write_run_dir

    try:
        return write_run_dir(sweep_dir, run_dir)
    except (ConfigError, ValueError) as exc:
        raise UsageError(f"{run_dir}: cannot be read from the sweep's store: {exc}") from None
