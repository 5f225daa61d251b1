"""What the experiment-tracker loggers share: one tracked run per natsray run, resumable, never lossy.

A :class:`Tracker` logs the config once as flat parameters (``strategy.population`` = ``"10"``), each
evaluation's objectives and report metrics as metrics at step = its journal line number, and at the
end the run's files as artifacts (``config.yaml``, ``summary.json``, ``best_arch.yaml``, the PNG
plots). Points are sent in batches (every ``flush_every`` evaluations or ``flush_seconds`` seconds,
and at the end), so a query-mode run of 100,000 evaluations makes about a hundred calls, not 100,000.

The tracked run's identity and how many journal lines it has received are kept in a small JSON file
in the run directory (``mlflow.json``, ``tensorboard.json``). When the run resumes, or when a sweep
reports a finished run the tracker has not followed, the tracker reopens its tracked run and first
sends the journal lines it has not received (those still buffered when a driver was killed, or all of
them), so the tracked metrics end up equal to the journal.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from natsray.callbacks.base import Callback
from natsray.plain_data import plain_data
from natsray.records import Candidate, Result

__all__ = ["ARTIFACTS", "Tracker", "flatten_config", "numeric_values"]

JOURNAL = "evaluations.jsonl"
"""The run's journal (``docs/results.md``): one JSON object per evaluation, the step is its line number."""
ARTIFACTS = ("config.yaml", "summary.json", "best_arch.yaml")
"""Files of a finished run sent as artifacts, with every ``*.png`` plot."""


def flatten_config(config: Any) -> dict[str, str]:
    """A config (an ``ExperimentConfig`` or its YAML mapping) as ``{"section.key": "value"}``.

    Nested mappings are joined with dots; lists, ``None`` and scalars are written as YAML flow text
    (``[valid_accuracy]``, ``null``, ``10``). ``objectives`` is left out (it repeats
    ``evaluator.objective``).
    """
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
            flat[prefix] = text[:-4] if text.endswith("\n...") else text  # a scalar's end-of-document mark

    data = plain_data(config)
    for key, value in (data or {}).items():
        if key != "objectives":
            walk(key, value)
    return flat


def numeric_values(objectives: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, float]:
    """The objectives and report metrics that are numbers (booleans, None, strings left out)."""
    values = {}
    for source in (objectives, metrics):
        for name, value in source.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and name not in values:
                values[name] = float(value)
    return values


class Tracker(Callback):
    """Base of the shipped experiment-tracker loggers (subclasses implement the ``_`` methods).

    Args:
        flush_every: Send the buffered points once this many evaluations are buffered.
        flush_seconds: ... or when an evaluation arrives this many seconds after the last send.
        artifacts: Send the run's files (:data:`ARTIFACTS` and the plots) at the end.
    """

    state_file: ClassVar[str] = "tracker.json"
    """The file in the run directory holding the tracked run's identity and progress."""

    def __init__(
        self, *, flush_every: int = 1000, flush_seconds: float = 5.0, artifacts: bool = True
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every: must be >= 1, got {flush_every}")
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.artifacts = artifacts
        self._run_dir: Path | None = None
        self._state: dict[str, Any] = {}
        self._points: list[tuple[int, float, dict[str, float]]] = []
        self._received = 0
        self._last_flush = 0.0

    # ------------------------------------------------------------ to implement
    def _open(self, run_dir: Path, state: Mapping[str, Any]) -> dict[str, Any]:
        """Start the tracked run, or reopen the one ``state`` names; what to store to reopen it."""
        raise NotImplementedError

    def _log_params(self, params: Mapping[str, str]) -> None:
        raise NotImplementedError

    def _log_points(self, points: list[tuple[int, float, dict[str, float]]]) -> None:
        """Send ``(step, unix time, {name: value})`` points."""
        raise NotImplementedError

    def _log_files(self, files: list[Path]) -> None:
        raise NotImplementedError

    def _close(self, finished: bool) -> None:
        """End the tracked run (``finished`` False: interrupted, to be resumed)."""
        raise NotImplementedError

    # ------------------------------------------------------------ hooks
    def on_run_start(self, run_dir: Path, config: Any) -> None:
        self._start(Path(run_dir), config)

    def on_result(self, result: Result, index: int, candidate: Candidate) -> None:
        if self._run_dir is None or index < self._received:
            return
        values = numeric_values(result.objectives, result.metrics) if result.ok else {}
        now = time.time()
        if values:
            self._points.append((index, now, values))
        self._received = index + 1
        if len(self._points) >= self.flush_every or now - self._last_flush >= self.flush_seconds:
            self._flush()

    def on_run_end(self, run_dir: Path, summary: Mapping[str, Any]) -> None:
        run_dir = Path(run_dir)
        if self._run_dir != run_dir:  # a sweep's run, or a run this tracker did not follow
            state = self._read_state(run_dir)
            if state.get("finished"):
                return
            self._start(run_dir, _read_config(run_dir))  # sends its journal first
        self._flush()
        if self.artifacts:
            names = [*ARTIFACTS, *sorted(p.name for p in run_dir.glob("*.png"))]
            self._log_files([run_dir / name for name in names if (run_dir / name).is_file()])
        self._close(finished=True)
        self._state["finished"] = True
        self._save()
        self._run_dir = None

    def on_run_error(self, run_dir: Path, error: BaseException) -> None:
        if self._run_dir is None:
            return
        self._flush()
        self._close(finished=False)
        self._run_dir = None

    # ------------------------------------------------------------ internals
    def _start(self, run_dir: Path, config: Any) -> None:
        state = self._read_state(run_dir)
        self._run_dir = run_dir
        self._points = []
        self._state = {**state, **self._open(run_dir, state), "finished": False}
        if "received" not in state:
            self._log_params(flatten_config(config))
        self._received = int(state.get("received", 0))
        self._last_flush = time.time()
        self._catch_up()
        self._flush()

    def _catch_up(self) -> None:
        """Buffer the journal lines past those received (a resumed run's, a sweep run's)."""
        assert self._run_dir is not None
        journal = self._run_dir / JOURNAL
        if not journal.exists():
            return
        with open(journal, "rb") as handle:
            for number, line in enumerate(handle):
                if number < self._received:
                    continue
                if not line.endswith(b"\n"):  # a torn last line (the engine drops it too)
                    break
                record = json.loads(line)
                if record.get("status") == "ok":
                    values = numeric_values(record.get("objectives") or {}, record.get("metrics") or {})
                    if values:
                        self._points.append((number, float(record.get("finish_time") or time.time()), values))
                self._received = number + 1

    def _flush(self) -> None:
        if self._run_dir is None:
            return
        if self._points:
            self._log_points(self._points)
            self._points = []
        self._last_flush = time.time()
        if self._state.get("received") != self._received:
            self._state["received"] = self._received
            self._save()

    def _read_state(self, run_dir: Path) -> dict[str, Any]:
        path = run_dir / self.state_file
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: unreadable ({exc}); delete it to start a new tracked run") from None

    def _save(self) -> None:
        assert self._run_dir is not None
        path = self._run_dir / self.state_file
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self._state, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
