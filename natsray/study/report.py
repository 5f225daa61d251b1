"""The comparative report of a sweep: one row per grid point, anytime curves with 95% CIs.

Per finished run the numbers come from its ``summary.json`` (the best cell by the searched
objective, its report metrics, evaluations, simulated seconds) and, for the curves, from its
journal: after each evaluation, the report metric of the best cell so far (by the first
objective), against the evaluation count and against the simulated clock. Across the seeds
of a grid point: mean, sample std and the 95% confidence interval of the mean (Student t,
``t(0.975, n-1) * std / sqrt(n)``). Identifiers (``nats_index``) are never averaged: the
table gives the most frequent best cell and how many seeds found it. Counts stay integers.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from natsray.engine.checkpoint import atomic_write_json
from natsray.experiment.run_data import RunData, load_run, run_from_parts
from natsray.study.grid import GridPoint, PlannedRun, load_plan, plan_runs
from natsray.study.stats import ci95
from natsray.study.store import read_stored_tables, stored_runs
from natsray.study.sweep import run_state

__all__ = ["EVALUATIONS_FILE", "PointRuns", "load_sweep_runs", "sweep_report", "write_evaluations"]

EVALUATIONS_FILE = "evaluations.parquet"

_IDENTIFIERS = ("nats_index",)
_TIME_STEPS = 200


@dataclass(frozen=True)
class PointRuns:
    """One grid point's finished runs (and how many of its runs are not finished)."""

    point: GridPoint
    runs: tuple[RunData, ...]
    unfinished: int


def _objective_label(run: RunData) -> str:
    """The first objective with its schedule, e.g. ``valid_accuracy@12``; a metric without a schedule
    (``params``, an ``extra_csv`` column, a proxy) by its own name."""
    from natsray.evaluators.metrics import COST_QUANTITIES, METRICS

    name = run.objectives[0].name
    hp = ((run.config or {}).get("evaluator") or {}).get("hp")
    scheduled = name in METRICS and name not in COST_QUANTITIES
    return f"{name}@{hp}" if scheduled and hp is not None else name


def _report_metric(run: RunData) -> str:
    """The first report metric that is not an identifier (else the first objective)."""
    metrics = [m for m in ((run.summary or {}).get("best_metrics") or {}) if m not in _IDENTIFIERS]
    return metrics[0] if metrics else run.objectives[0].name


def _incumbent(run: RunData, metric: str, by_time: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(x, report metric of the best cell so far)`` after each evaluation, x = count or simulated s."""
    objective = run.objectives[0]
    table = run.evaluated_table
    if table.num_rows == 0 or "status" not in table.column_names:
        return np.array([], dtype=float), np.array([], dtype=float)
    ok = np.asarray(table.column("status").to_pylist(), dtype=object) == "ok"
    values = run.column(f"objective.{objective.name}")[ok]
    found = run.column(f"metric.{metric}")
    found = np.where(np.isnan(found), run.column(f"objective.{metric}"), found)[ok]
    times = run.column("sim_finish" if "sim_finish" in table.column_names else "sim_finish_time")[ok]
    times = np.nan_to_num(times, nan=0.0)
    if by_time:
        order = np.argsort(times, kind="stable")
        values, found, times = values[order], found[order], times[order]
    keyed = values if objective.maximize else -values
    keyed = np.where(np.isnan(keyed), -np.inf, keyed)
    previous = np.concatenate([[-np.inf], np.maximum.accumulate(keyed)[:-1]]) if keyed.size else keyed
    improved = keyed > previous
    best = np.maximum.accumulate(np.where(improved, np.arange(keyed.size), -1)) if keyed.size else keyed
    ys = np.where(best >= 0, found[np.maximum(best, 0).astype(int)], np.nan) if keyed.size else keyed
    xs = times if by_time else np.arange(1, keyed.size + 1, dtype=float)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _curves(runs: Sequence[RunData], metric: str, by_time: bool) -> tuple[np.ndarray, np.ndarray]:
    """A common x grid and the runs' step curves on it (a finished run holds its last value)."""
    pairs = [_incumbent(run, metric, by_time) for run in runs]
    end = max((x[-1] for x, _ in pairs if len(x)), default=1.0)
    grid = np.linspace(0.0, end, _TIME_STEPS) if by_time else np.arange(1, int(end) + 1, dtype=float)
    rows = np.full((len(pairs), len(grid)), np.nan)
    for row, (x, y) in zip(rows, pairs, strict=True):
        position = np.searchsorted(x, grid, side="right") - 1
        row[position >= 0] = y[position[position >= 0]]
    return grid, rows


def _stats(values: Sequence[float]) -> dict[str, Any]:
    array = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if array.size == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    return {  # one seed has no spread: std and CI are None (shown as n/a)
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if array.size > 1 else None,
        "ci95": float(ci95(array)) if array.size > 1 else None,
        "min": float(array.min()),
        "max": float(array.max()),
        "n": int(array.size),
    }


def _run_row(run: RunData) -> dict[str, Any]:
    summary = run.summary or {}
    metrics = dict(summary.get("best_metrics") or {})
    row: dict[str, Any] = {"run": str(run.path), "seed": run.seed}
    row.update({f"best.{k}": v for k, v in (summary.get("best_objectives") or {}).items()})
    row.update(metrics)
    for key in ("evaluations", "failed", "simulated_seconds", "wall_seconds", "stop_reason"):
        row[key] = summary.get(key)
    return row


def _point_row(group: PointRuns) -> dict[str, Any]:
    """The table row of one grid point (numbers as data; formatting happens when writing)."""
    row: dict[str, Any] = dict(group.point.labels)
    runs = group.runs
    row["seeds"] = len(runs)
    row["unfinished"] = group.unfinished
    if not runs:
        return row
    metric = _report_metric(runs[0])
    objective = _objective_label(runs[0])
    summaries = [run.summary or {} for run in runs]
    row["metric"] = metric
    row[metric] = _stats([(s.get("best_metrics") or {}).get(metric) for s in summaries])
    name = runs[0].objectives[0].name
    row[f"best {objective}"] = _stats([(s.get("best_objectives") or {}).get(name) for s in summaries])
    row["evaluations"] = _stats([s.get("evaluations") for s in summaries])
    row["simulated_seconds"] = _stats([s.get("simulated_seconds") for s in summaries])
    for identifier in _IDENTIFIERS:
        found = Counter((s.get("best_metrics") or {}).get(identifier) for s in summaries)
        found.pop(None, None)
        if found:
            value, count = found.most_common(1)[0]
            row[f"most frequent best {identifier}"] = {"value": value, "seeds": count, "of": len(runs)}
    return row


def _text(value: Any, digits: int = 2) -> str:
    if isinstance(value, Mapping) and "mean" in value:
        if value["mean"] is None:
            return "-"
        std = "n/a" if value["std"] is None else f"{value['std']:,.{digits}f}"
        return f"{value['mean']:,.{digits}f} ± {std}"
    if isinstance(value, Mapping) and "value" in value:
        return f"{value['value']} ({value['seeds']} of {value['of']} seeds)"
    return "-" if value is None else str(value)


def _table(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells: axes, seeds, then per metric 'mean ± std' (and the 95% CI of the first)."""
    stats = list(dict.fromkeys(k for row in rows for k, v in row.items() if isinstance(v, Mapping)))
    header = [*axes, "seeds", "unfinished"]
    for key in stats:
        header.append(f"{key} (mean ± std)" if "value" not in str(rows[0].get(key, {})) else key)
        if key == rows[0].get("metric"):
            header.append(f"{key} 95% CI")
    lines = []
    for row in rows:
        line = [str(row.get(axis, "")) for axis in axes] + [str(row["seeds"]), str(row["unfinished"])]
        for key in stats:
            digits = 0 if key in ("evaluations", "simulated_seconds") else 2
            line.append(_text(row.get(key), digits))
            if key == rows[0].get("metric"):
                value = row.get(key) or {}
                line.append("n/a" if value.get("ci95") is None else f"± {value['ci95']:.2f}")
        lines.append(line)
    return header, lines


def _write_tables(rows: list[dict[str, Any]], axes: list[str], out: Path) -> str:
    header, lines = _table(rows, axes)
    markdown = "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
        + ["| " + " | ".join(line) + " |" for line in lines]
    )
    (out / "sweep_report.md").write_text(markdown + "\n", encoding="utf-8")
    flat = []
    for row in rows:
        entry: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, Mapping):
                entry.update({f"{key} {stat}": number for stat, number in value.items()})
            else:
                entry[key] = value
        flat.append(entry)
    columns = list(dict.fromkeys(key for entry in flat for key in entry))
    with open(out / "sweep_report.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, restval="")
        writer.writeheader()
        writer.writerows(flat)
    return markdown


def load_sweep_runs(sweep_dir: str | Path, runs: Sequence[PlannedRun]) -> list[RunData | None]:
    """Each planned run as read back (from the sweep's store or its run directory), None when it
    has not finished.

    Raises:
        ValueError: one line naming the file when a store file or run directory is unreadable.
    """
    from natsray.config import config_to_dict

    stored = stored_runs(sweep_dir)
    tables = read_stored_tables({run.name: stored[run.name] for run in runs if run.name in stored})
    loaded: list[RunData | None] = []
    for run in runs:
        if run.name in stored and run.config is not None:
            config = config_to_dict(run.config)
            config["ray"]["address"] = None
            loaded.append(run_from_parts(run.run_dir, tables[run.name], stored[run.name].summary, config))
        elif run_state(run.run_dir) in ("finalized", "finished"):
            loaded.append(load_run(run.run_dir))
        else:
            loaded.append(None)
    return loaded


def _groups(runs: Sequence[PlannedRun], loaded: Sequence[RunData | None]) -> list[PointRuns]:
    by_point: dict[str, tuple[GridPoint, list[RunData], list[int]]] = {}
    for run, data in zip(runs, loaded, strict=True):
        _, finished, unfinished = by_point.setdefault(run.point.name, (run.point, [], [0]))
        if data is not None:
            finished.append(data)
        else:
            unfinished[0] += 1
    return [PointRuns(point, tuple(found), missing[0]) for point, found, missing in by_point.values()]


def write_evaluations(runs: Sequence[PlannedRun], loaded: Sequence[RunData | None], path: Path) -> None:
    """Every finished run's evaluations in one Parquet file: a ``run`` column (the run's directory
    relative to the sweep's), the axis labels, ``run_seed``, then the journal's flat columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for run, data in zip(runs, loaded, strict=True):
        if data is None or data.table.num_rows == 0:
            continue
        rows = data.table.num_rows
        front = {"run": pa.array([run.name] * rows)}
        front.update({axis: pa.array([label] * rows) for axis, label in run.point.labels})
        front["run_seed"] = pa.array([run.seed] * rows, pa.int64())
        table = data.table
        for position, (name, column) in enumerate(front.items()):
            table = table.add_column(position, name if name not in table.column_names else f"{name}_", column)
        tables.append(table)
    if tables:
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(pa.concat_tables(tables, promote_options="permissive"), tmp)
        tmp.replace(path)


def _dataset(group: PointRuns) -> str:
    return str(((group.runs[0].config or {}).get("evaluator") or {}).get("dataset") or "")


def _legend(group: PointRuns) -> str:
    """The point's labels, less the dataset (each dataset has its own panel)."""
    dataset = _dataset(group)
    labels = [label for _, label in group.point.labels if label != dataset]
    return ", ".join(labels) or (group.point.name or "all seeds")


def sweep_report(sweep_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Tabulate and plot a sweep directory (finished runs; unfinished ones are counted).

    Writes ``sweep_report.{md,csv,json}``, ``anytime_time.png``, ``anytime_evaluations.png`` and
    ``evaluations.parquet`` (:func:`write_evaluations`) to ``out_dir`` (default
    ``SWEEP_DIR/report``) and prints the Markdown table.

    Returns:
        ``{"points": [row, ...], "runs": [per-run row, ...]}`` as in ``sweep_report.json``.

    Raises:
        ConfigError: ``sweep_dir`` holds no sweep plan.
    """
    from natsray.study.plots import plot_anytime

    sweep_dir = Path(sweep_dir)
    plan = load_plan(sweep_dir)
    planned = plan_runs(plan, sweep_dir)
    loaded = load_sweep_runs(sweep_dir, planned)
    groups = _groups(planned, loaded)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    write_evaluations(planned, loaded, out / EVALUATIONS_FILE)
    axes = [axis.name for axis in plan.axes]
    rows = [_point_row(group) for group in groups]
    result = {
        "points": rows,
        "runs": [{**dict(g.point.labels), **_run_row(run)} for g in groups for run in g.runs],
    }
    atomic_write_json(out / "sweep_report.json", result)
    print(_write_tables(rows, axes, out))
    finished = [g for g in groups if g.runs]
    if finished:
        metric = _report_metric(finished[0].runs[0])
        objective = _objective_label(finished[0].runs[0])
        for by_time, name in ((True, "anytime_time.png"), (False, "anytime_evaluations.png")):
            curves = [(_legend(g), _dataset(g), *_curves(g.runs, metric, by_time)) for g in finished]
            plot_anytime(curves, metric, objective, by_time, out / name)
    print(f"wrote {out}")
    return result
