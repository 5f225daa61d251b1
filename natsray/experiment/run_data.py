"""One run directory, read: its journal records, summary, config and objectives.

The read-side model shared by :mod:`.report` (tables) and :mod:`.plots` (figures).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from natsray.engine.checkpoint import JOURNAL_FILE, SUMMARY_FILE, read_journal, read_json
from natsray.records import Objective

__all__ = ["RunData", "load_run"]


@dataclass(frozen=True)
class RunData:
    """One run directory, read.

    Attributes:
        path: The run directory.
        records: Journal records in file order (a torn last line left out).
        summary: ``summary.json`` content, None while the run has not finished once.
        config: ``config.yaml`` as plain data, None when absent.
        objectives: The run's objectives (from the summary, else the config, else the records).
    """

    path: Path
    records: tuple[Mapping[str, Any], ...]
    summary: Mapping[str, Any] | None
    config: Mapping[str, Any] | None
    objectives: tuple[Objective, ...]

    @functools.cached_property
    def evaluated(self) -> list[Mapping[str, Any]]:
        """Records of real evaluations, in finish order (``cached: true`` lines of journals written
        by natsray 0.1, which journaled cache answers, left out); computed once."""
        return [record for record in self.records if not record.get("cached")]

    @property
    def seed(self) -> int | None:
        return (self.config or {}).get("seed")

    @property
    def label(self) -> str:
        """``strategy/evaluator`` from the config, else the directory name."""
        config = self.config or {}
        strategy = (config.get("strategy") or {}).get("name")
        evaluator = (config.get("evaluator") or {}).get("type")
        return f"{strategy}/{evaluator}" if strategy and evaluator else self.path.name

    @property
    def group_key(self) -> str:
        """Equal for runs of one config that differ only in seed and output directory."""
        if self.config is None:
            return str(self.path.resolve().parent)
        rest = {key: value for key, value in self.config.items() if key not in ("seed", "output")}
        return json.dumps(rest, sort_keys=True, default=str)


def _read_journal(path: Path) -> list[dict[str, Any]]:
    records = read_journal(path)
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or "arch" not in record or "status" not in record:
            raise ValueError(f"{path}: line {number} is not an evaluation record (needs 'arch' and 'status')")
    return records


def _objectives(
    summary: Mapping[str, Any] | None, config: Mapping[str, Any] | None, records: Sequence[Mapping[str, Any]]
) -> tuple[Objective, ...]:
    specs: Any = (summary or {}).get("objectives") or ((config or {}).get("evaluator") or {}).get("objective")
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        first_ok = next((r for r in records if r.get("status") == "ok" and r.get("objectives")), None)
        specs = list(first_ok["objectives"]) if first_ok else []
    return tuple(Objective.parse(spec) for spec in specs)


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory (finished, interrupted or still running).

    Raises:
        ValueError: one line naming the file when the directory, journal or summary is unreadable.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"{path}: no such run directory")
    records = _read_journal(path / JOURNAL_FILE)
    summary = read_json(path / SUMMARY_FILE)
    config = None
    if (path / "config.yaml").is_file():
        try:
            config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path / 'config.yaml'}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return RunData(path, tuple(records), summary, config, _objectives(summary, config, records))
