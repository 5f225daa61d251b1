"""One run directory's life: made (``config.yaml`` written), run or resumed, finished (CSV, plots).

What ``natsray run`` / ``natsray resume`` (:mod:`natsray.cli`) and the Python API
(:func:`natsray.run`, :meth:`natsray.Run.resume`) share, so that a run started from either is the
same complete directory and either can continue it. Ray and the engine are imported only when a
run is executed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from natsray.config import (
    ExperimentConfig,
    apply_overrides,
    check_paths,
    config_from_dict,
    dump_config,
    read_yaml,
    resolve_paths,
)
from natsray.engine.checkpoint import check_not_in_use, make_output_dir
from natsray.errors import StrategyError

__all__ = [
    "CONFIG_FILE",
    "RUN_FILES",
    "RunDirError",
    "checked_config",
    "clear_run_dir",
    "execute",
    "new_run",
    "resume_config",
]

CONFIG_FILE = "config.yaml"
RUN_FILES = ("evaluations.jsonl", "checkpoint.json", "summary.json")
"""Files whose presence means a directory holds a run."""


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (one line naming it and what to do instead)."""


def checked_config(data: Mapping[str, Any], source: str | None = None) -> ExperimentConfig:
    """Parse a raw config, check its input paths exist and make them absolute (as ``natsray run`` does).

    Raises:
        ConfigError: one line naming ``source``, the YAML path and what was expected.
    """
    config = config_from_dict(data, source=source)
    check_paths(config, source)
    return resolve_paths(config)


def clear_run_dir(run_dir: Path, *, overwrite: bool) -> None:
    """Refuse a directory that already holds a run (or, with ``overwrite``, delete that run).

    Raises:
        RunDirError: ``run_dir`` is a file, holds a run (and not ``overwrite``), or holds run files
            but no ``config.yaml`` (not deleted: natsray did not make it).
        RunInUseError: another process holds ``run_dir`` (a live run: nothing is touched).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: is a file, expected a run directory")
    check_not_in_use(run_dir)  # a live run keeps its directory
    if not any((run_dir / name).exists() for name in RUN_FILES):
        return
    if not overwrite:
        raise RunDirError(
            f"{run_dir} already holds a run: continue it with 'natsray resume {run_dir}', "
            "replace it with --overwrite (overwrite=True from Python), or choose another --out"
        )
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunDirError(
            f"{run_dir}: has run files but no {CONFIG_FILE}; not deleting a directory natsray did not make"
        )
    shutil.rmtree(run_dir)


def new_run(config: ExperimentConfig, run_dir: str | Path, *, overwrite: bool = False) -> ExperimentConfig:
    """Make ``run_dir`` a new run directory: its ``config.yaml`` written, ``output.dir`` set to it.

    Args:
        config: The checked config (:func:`checked_config`).
        run_dir: The directory (created).
        overwrite: Delete a run already there (only one natsray made: with a ``config.yaml``).

    Returns:
        ``config`` with ``output.dir = run_dir``.

    Raises:
        RunDirError: ``run_dir`` is a file, or already holds a run (and not ``overwrite``).
    """
    run_dir = Path(run_dir)
    clear_run_dir(run_dir, overwrite=overwrite)
    config = dataclasses.replace(config, output=dataclasses.replace(config.output, dir=str(run_dir)))
    make_output_dir(run_dir)
    dump_config(config, run_dir / CONFIG_FILE)
    return config


def _binding_budgets(config: ExperimentConfig, summary: Mapping[str, Any]) -> list[str]:
    """``budget.KEY=LIMIT (USED used)`` for each budget limit the finished run already reached."""
    used = {
        "evaluations": summary.get("evaluations", 0),
        "wall_seconds": summary.get("wall_seconds", 0.0),
        "simulated_seconds": summary.get("simulated_seconds", 0.0),
    }
    return [
        f"budget.{name}={limit:g} ({used[name]:g} used)"
        for name, limit in dataclasses.asdict(config.budget).items()
        if name in used and limit is not None and used[name] >= limit
    ]


def resume_config(
    run_dir: str | Path, overrides: Sequence[str] = (), *, function: Callable[..., Any] | None = None
) -> ExperimentConfig:
    """The config a run directory continues with: its ``config.yaml``, ``budget.*`` overrides applied.

    With overrides, ``config.yaml`` is rewritten so that it describes the run as it continues.

    Args:
        run_dir: The run directory.
        overrides: ``budget.KEY=VALUE`` items (anything else would change the search).
        function: The scoring function of a run started with ``natsray.run(evaluator=FUNCTION)``
            (its ``config.yaml`` names no import path for it).

    Raises:
        RunDirError: no ``config.yaml``; an override outside ``budget.*``; or a finished run
            whose budget is used up and not raised.
        ConfigError: ``config.yaml`` no longer valid (e.g. its function needs ``function``).
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunDirError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    for item in overrides:
        if not item.startswith("budget."):
            raise RunDirError(
                f"--set {item!r}: a resumed run may only change budget.* (anything else changes the search)"
            )
    data = apply_overrides(read_yaml(path), overrides)
    if function is not None:
        section = data.get("evaluator")
        if not isinstance(section, dict) or section.get("type") != "function":
            raise RunDirError(f"{path}: evaluator.type is not 'function'; this run takes no scoring function")
        section["function"] = function
    config = checked_config(data, str(path))
    if overrides:
        _check_can_run_longer(run_dir, config)
        check_not_in_use(run_dir)  # a live run's config.yaml is not rewritten
        dump_config(config, path)
    return config


def _check_can_run_longer(run_dir: Path, config: ExperimentConfig) -> None:
    """Refuse ``budget.*`` overrides on a run stopped by a budget that still binds."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        return
    summary = json.loads(summary_path.read_text())
    if not str(summary.get("stop_reason") or "").startswith("budget:"):
        return
    binding = _binding_budgets(config, summary)
    if binding:
        raise RunDirError(
            f"{run_dir}: cannot run longer: {', '.join(binding)} is used up; raise it as well, "
            f"e.g. --set {binding[0].split('=')[0]}=N"
        )


def execute(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    resume: bool,
    address: str | None = None,
    progress: bool | None = None,
    finishing: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    **engine: Any,
) -> Any:
    """Run (or resume) the experiment in ``run_dir``, then write its CSV, best cell and plots.

    Args:
        config: The run's config.
        run_dir: Its run directory (made by :func:`new_run`).
        resume: Continue the run there.
        address: Ray cluster to join (default: ``config.ray.address``, ``RAY_ADDRESS``, a local Ray).
        progress: Show the progress bar (default ``config.output.progress``).
        finishing: A context manager around the finishing step (the CLI's Ctrl-C guard), which
            runs before the callbacks' ``on_run_end`` (they find the CSV, best cell and plots).
        engine: Further keywords of :func:`natsray.engine.runner.run_experiment` (``callbacks``).

    Returns:
        The run's :class:`~natsray.engine.summary.RunSummary`.

    Raises:
        StrategyError: the strategy's own code raised; its line ends with how to continue the run
            (``natsray resume DIR``, or ``natsray.load_run('DIR').resume(evaluator=...)`` for a run
            scoring with a Python object).
    """
    from natsray.engine.runner import run_experiment
    from natsray.evaluators.function import resume_command
    from natsray.experiment.report import finalize_run

    def finish(path: Path) -> None:
        with finishing():
            finalize_run(path)

    try:
        summary = run_experiment(
            config,
            run_dir,
            resume=resume,
            address=address or config.ray.address,
            progress=progress,
            finalize=finish,
            **engine,
        )
    except StrategyError as exc:  # the user's code: once fixed, the run continues (CLI and Python alike)
        hint = f"after fixing it, {resume_command(config.evaluator, run_dir)} continues the run"
        raise StrategyError(f"{exc}; {hint}") from exc.__cause__
    return summary
