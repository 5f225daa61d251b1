"""The comparative report of a sweep: one row per grid point, anytime curves with 95% CIs.

Per finished run the numbers come from its ``summary.json`` (the best cell by the searched
objective, its report metrics, evaluations, simulated seconds) and, for the curves, from its
journal: after each evaluation, the report metric of the best cell so far (by the first
objective), against the evaluation count and against the simulated clock. Across the seeds
of a grid point: mean, sample std and the 95% confidence interval of the mean (Student t,
``t(0.975, n-1) * std / sqrt(n)``). Identifiers (``nats_index``) are never averaged: the
table gives the most frequent best cell and how many seeds found it (a tie goes to the better
mean report metric, then to the lower ``nats_index``: :func:`natsray.experiment.best_cells.most_frequent`).
Counts stay integers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from natsray.config import config_to_dict
from natsray.engine.checkpoint import atomic_write_json, ignore_own_output
from natsray.experiment.arrow_columns import booleans, floats
from natsray.experiment.arrow_columns import column as arrow_column
from natsray.experiment.best_cells import best_value, describe, most_frequent_best, report_metric
from natsray.experiment.group_names import group_names
from natsray.experiment.run_data import RunData, load_run, run_from_parts
from natsray.study.grid import GridPoint, PlannedRun, load_plan, plan_runs
from natsray.study.stats import ci95
from natsray.study.store import read_stored_tables, stored_runs
from natsray.study.sweep import run_state

if TYPE_CHECKING:
    from natsray.study.plot_process import PlotProcess

__all__ = ["EVALUATIONS_FILE", "PointRuns", "load_sweep_runs", "sweep_report", "write_evaluations"]

EVALUATIONS_FILE = "evaluations.parquet"

_OK = arrow_column(["ok"])[0]
"""The status of a successful evaluation as an Arrow scalar (a Python one makes pyarrow import pandas)."""
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


def _journals(runs: Sequence[RunData]) -> pa.Table:
    """The runs' journals (:attr:`RunData.table`) one after another, columns unified (absent: null)."""
    tables = [run.table for run in runs if run.table.num_rows]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def _floats(journals: pa.Table, name: str, runs: Sequence[RunData]) -> np.ndarray:
    """Column ``name`` of :func:`_journals` as floats, NaN where null or absent.

    Raises:
        ValueError: the column holds text (:meth:`RunData.column`'s error, naming a journal).
    """
    if name not in journals.column_names or pa.types.is_null(journals.schema.field(name).type):
        return np.full(journals.num_rows, np.nan)
    column = journals.column(name)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        for run in runs:
            run.column(name)  # raises for the first run whose column is text
    return floats(column)


def _incumbents(
    runs: Sequence[RunData], metric: str, by_time: bool, journals: pa.Table | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per run, ``(x, report metric of the best cell so far)`` after each successful evaluation (cache
    answers left out), x = evaluation count or seconds (:func:`_times`; then in finish order, equal times
    in journal order).

    The best cell so far is the first to reach the running maximum of the run's first objective
    (minimised ones negated; NaN never counts); its report metric is ``metric.<metric>``, else
    ``objective.<metric>``, else NaN. One pass over all runs: a running maximum over their
    concatenated journals, each run's values ranked into an integer range above the previous run's.

    Args:
        journals: :func:`_journals` of ``runs`` (more columns may precede), when the caller has it.
    """
    journals = _journals(runs) if journals is None else journals
    lengths = np.array([run.table.num_rows for run in runs], dtype=np.int64)
    code = np.repeat(np.arange(len(runs)), lengths)
    ok = np.zeros(journals.num_rows, dtype=bool)
    if "status" in journals.column_names and _is_text(journals.schema.field("status").type):
        ok = booleans(pc.equal(journals.column("status"), _OK))
    if "cached" in journals.column_names and pa.types.is_boolean(journals.schema.field("cached").type):
        ok &= ~booleans(journals.column("cached"))
    objectives = [run.objectives[0] for run in runs]
    names = [objective.name for objective in objectives]
    values = np.full(journals.num_rows, np.nan)
    for name in dict.fromkeys(names):
        rows = np.array([other == name for other in names], dtype=bool)[code]
        values[rows] = _floats(journals, f"objective.{name}", runs)[rows]
    found = _floats(journals, f"metric.{metric}", runs)
    found = np.where(np.isnan(found), _floats(journals, f"objective.{metric}", runs), found)
    times = _times(runs, journals, code) if by_time else np.zeros(journals.num_rows)
    code, values, found, times = code[ok], values[ok], found[ok], times[ok]
    if by_time:
        order = np.lexsort((times, code))  # stable: equal times keep journal order
        code, values, found, times = code[order], values[order], found[order], times[order]
    maximize = np.array([objective.maximize for objective in objectives], dtype=bool)
    keyed = np.where(maximize[code], values, -values)
    keyed = np.where(np.isnan(keyed), -np.inf, keyed)
    # dense ranks (-inf: 0, never an improvement), shifted so that each run's range lies above the last's
    levels, rank = np.unique(keyed, return_inverse=True)
    rank = rank.reshape(-1) + (0 if levels.size and levels[0] == -np.inf else 1)
    floor = code * (levels.size + 2)
    shifted = floor + rank
    running = np.maximum.accumulate(shifted) if shifted.size else shifted
    improved = shifted > np.maximum(np.concatenate([floor[:1], running[:-1]]), floor)
    starts = np.concatenate([[0], np.cumsum(np.bincount(code, minlength=len(runs)))])
    position = np.arange(code.size)
    best = np.maximum.accumulate(np.where(improved, position, -1)) if code.size else position
    ys = np.where(best >= starts[code], found[np.maximum(best, 0)], np.nan) if code.size else found
    xs = times if by_time else (position - starts[code] + 1).astype(float)
    return [(xs[starts[i] : starts[i + 1]], ys[starts[i] : starts[i + 1]]) for i in range(len(runs))]


def _times(runs: Sequence[RunData], journals: pa.Table, code: np.ndarray) -> np.ndarray:
    """Each row's finish time: simulated seconds for a run on the simulated clock, else the run's own
    wall seconds since its first submit, the time it was stopped before a resume left out
    (:meth:`RunData.wall_clock`); 0 where unknown."""
    clock = np.array([run.table.schema.get_field_index("sim_finish") >= 0 for run in runs], dtype=bool)
    times = np.where(
        clock[code], _floats(journals, "sim_finish", runs), _floats(journals, "sim_finish_time", runs)
    )
    walls = [i for i, run in enumerate(runs) if not run.simulated_clock]
    if walls:
        starts = np.concatenate([[0], np.cumsum([run.table.num_rows for run in runs])])
        for i in walls:
            times[starts[i] : starts[i + 1]] = runs[i].wall_clock(runs[i].table)
    return np.nan_to_num(times, nan=0.0)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _curves(pairs: Sequence[tuple[np.ndarray, np.ndarray]], by_time: bool) -> tuple[np.ndarray, np.ndarray]:
    """A common x grid and the runs' step curves (:func:`_incumbents`) on it (a finished run holds
    its last value)."""
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


def _run_row(run: RunData, sweep_dir: Path) -> dict[str, Any]:
    """One run's entry in ``sweep_report.json``; ``run`` is its path inside ``sweep_dir``, as in
    ``evaluations.parquet`` (the same wherever the report was made from)."""
    summary = run.summary or {}
    metrics = dict(summary.get("best_metrics") or {})
    try:
        name = Path(run.path).relative_to(sweep_dir).as_posix()
    except ValueError:  # not under the sweep directory (never for a planned run)
        name = str(run.path)
    row: dict[str, Any] = {"run": name, "seed": run.seed}
    row.update({f"best.{k}": v for k, v in (summary.get("best_objectives") or {}).items()})
    row.update(metrics)
    for key in ("evaluations", "failed", "simulated_seconds", "wall_seconds", "stop_reason"):
        row[key] = summary.get(key)
    return row


def _point_row(group: PointRuns, name: str | None = None) -> dict[str, Any]:
    """The table row of one grid point (numbers as data; formatting happens when writing), ``group``
    its name (:func:`_names`; default its directory name), then its axis labels."""
    row: dict[str, Any] = {"group": name or group.point.name or "all seeds", **dict(group.point.labels)}
    runs = group.runs
    row["seeds"] = len(runs)
    row["unfinished"] = group.unfinished
    if not runs:
        return row
    metric = report_metric(runs[0])
    objective = _objective_label(runs[0])
    summaries = [run.summary or {} for run in runs]
    row["metric"] = metric
    scores = [best_value(metric, s.get("best_metrics"), s.get("best_objectives")) for s in summaries]
    row[metric] = _stats(scores)
    name = runs[0].objectives[0].name
    row[f"best {objective}"] = _stats([(s.get("best_objectives") or {}).get(name) for s in summaries])
    row["evaluations"] = _stats([s.get("evaluations") for s in summaries])
    row["simulated_seconds"] = _stats([s.get("simulated_seconds") for s in summaries])
    best_objectives = [s.get("best_objectives") for s in summaries]
    row.update(most_frequent_best([s.get("best_metrics") for s in summaries], runs[0], best_objectives))
    return row


def _digits(value: Any) -> int:
    """Decimals for a 'mean ± std' cell: 2, or as many as show a mean under 1 to 2 significant digits
    (params 0.0756 M as ``0.0756``, not ``0.08``; a latency of 0.0123 s as ``0.0123``), at most 6."""
    mean = value.get("mean") if isinstance(value, Mapping) else None
    if not isinstance(mean, int | float) or not math.isfinite(mean) or mean == 0 or abs(mean) >= 1:
        return 2
    return min(6, max(2, 2 - math.floor(math.log10(abs(mean)))))


def _text(value: Any, digits: int = 2) -> str:
    if isinstance(value, Mapping) and "mean" in value:
        if value["mean"] is None:
            return "-"
        std = "n/a" if value["std"] is None else f"{value['std']:,.{digits}f}"
        return f"{value['mean']:,.{digits}f} ± {std}"
    if isinstance(value, Mapping) and "value" in value:
        return describe(value)
    return "-" if value is None else str(value)


def _table(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells: axes, seeds, then per metric 'mean ± std' (and the 95% CI of the first)."""
    stats = list(dict.fromkeys(k for row in rows for k, v in row.items() if isinstance(v, Mapping)))
    identifiers = {k for row in rows for k, v in row.items() if isinstance(v, Mapping) and "value" in v}
    metric = next((row["metric"] for row in rows if "metric" in row), None)  # a point may have no runs
    header = [*axes, "seeds", "unfinished"]
    for key in stats:
        header.append(key if key in identifiers else f"{key} (mean ± std)")
        if key == metric:
            header.append(f"{key} 95% CI")
    lines = []
    for row in rows:
        line = [str(row.get(axis, "")) for axis in axes] + [str(row["seeds"]), str(row["unfinished"])]
        for key in stats:
            digits = 0 if key in ("evaluations", "simulated_seconds") else _digits(row.get(key))
            line.append(_text(row.get(key), digits))
            if key == metric:
                value = row.get(key) or {}
                line.append("n/a" if value.get("ci95") is None else f"± {value['ci95']:.{digits}f}")
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

    Args:
        runs: The sweep's planned runs, ``plan_runs(load_plan(sweep_dir), sweep_dir, typed=False)``:
            a stored run's config is their plain data (no strategy or evaluator class imported, so a
            sweep of a plugin is read without it); typed ones (``typed=True``) are converted.

    Raises:
        ValueError: one line naming the file when a store file or run directory is unreadable, or
            naming the run when a stored run's grid point has no valid config.
    """
    stored = stored_runs(sweep_dir)
    tables = read_stored_tables({run.name: stored[run.name] for run in runs if run.name in stored})
    loaded: list[RunData | None] = []
    for run in runs:
        if run.name in stored:
            config = _plain_config(run)
            if config is None:
                raise ValueError(
                    f"{run.run_dir}: finished, but its config in sweep.yaml is invalid: {run.error}"
                )
            loaded.append(run_from_parts(run.run_dir, tables[run.name], stored[run.name].summary, config))
        elif run_state(run.run_dir) in ("finalized", "finished"):
            loaded.append(load_run(run.run_dir))
        else:
            loaded.append(None)
    return loaded


def _plain_config(run: PlannedRun) -> Mapping[str, Any] | None:
    """A planned run's config as plain data (``ray.address`` None, as its ``config.yaml`` holds it)."""
    if run.data is not None:
        return run.data
    if run.config is None:
        return None
    data = config_to_dict(run.config)
    data["ray"]["address"] = None
    return data


def _groups(runs: Sequence[PlannedRun], loaded: Sequence[RunData | None]) -> list[PointRuns]:
    by_point: dict[str, tuple[GridPoint, list[RunData], list[int]]] = {}
    for run, data in zip(runs, loaded, strict=True):
        _, finished, unfinished = by_point.setdefault(run.point.name, (run.point, [], [0]))
        if data is not None:
            finished.append(data)
        else:
            unfinished[0] += 1
    return [PointRuns(point, tuple(found), missing[0]) for point, found, missing in by_point.values()]


PARQUET_ROWS = 1 << 18
"""Rows per row group of ``evaluations.parquet``: a quarter of pyarrow's default (1,048,576), so that the
copy made for one row group stays small (an 18,000-run NATS sweep's report: 1.85-1.92 GB peak instead of
2.69 GB; docs/sweeps.md, "Memory and disk")."""


def write_evaluations(runs: Sequence[PlannedRun], loaded: Sequence[RunData | None], path: Path) -> None:
    """Every finished run's evaluations in one Parquet file: a ``run`` column (the run's directory
    relative to the sweep's), the axis labels, ``run_seed``, then the journal's flat columns (a
    front column whose name a journal field has gets a ``_`` appended)."""
    _write_evaluations(runs, loaded, _journals([data for data in loaded if data is not None]), path)


def _write_evaluations(
    runs: Sequence[PlannedRun], loaded: Sequence[RunData | None], journals: pa.Table, path: Path
) -> None:
    """:func:`write_evaluations` with the finished runs' :func:`_journals` given."""
    import pyarrow.parquet as pq

    parts = [run for run, data in zip(runs, loaded, strict=True) if data is not None and data.table.num_rows]
    if not parts:
        return
    lengths = [data.table.num_rows for data in loaded if data is not None and data.table.num_rows]
    rows = np.repeat(np.arange(len(parts), dtype=np.int32), lengths)
    front = {"run": arrow_column([run.name for run in parts])}  # one value per run; per row below
    for position, (axis, _) in enumerate(parts[0].point.labels):
        front[axis] = arrow_column([run.point.labels[position][1] for run in parts])
    front["run_seed"] = arrow_column([run.seed for run in parts]).cast(pa.int64())
    names = [name if name not in journals.column_names else f"{name}_" for name in front]
    table = journals
    finished = [data for data in loaded if data is not None and data.table.num_rows]
    walls = [not data.simulated_clock and "finish_time" in data.table.column_names for data in finished]
    if any(walls) and "elapsed_s" not in table.column_names:  # each run's own wall clock (its plots' x)
        elapsed = [
            data.wall_clock(data.table) if wall else np.full(data.table.num_rows, np.nan)
            for data, wall in zip(finished, walls, strict=True)
        ]
        table = table.append_column("elapsed_s", pa.array(np.concatenate(elapsed), from_pandas=True))
    tmp = path.with_name(path.name + ".tmp")
    # Row groups of PARQUET_ROWS rows: the front columns taken for those rows, the journal columns
    # combined into one chunk each (a third faster to encode than one chunk per run). Memory holds a
    # copy of one row group, not of every evaluation.
    writer = None
    try:
        for start in range(0, table.num_rows, PARQUET_ROWS):
            chunk = rows[start : start + PARQUET_ROWS]  # pa.array would import pandas for numpy input
            which = pa.Array.from_buffers(pa.int32(), len(chunk), [None, pa.py_buffer(chunk)])
            part = table.slice(start, PARQUET_ROWS).combine_chunks()
            for position, (name, values) in enumerate(zip(names, front.values(), strict=True)):
                part = part.add_column(position, name, values.take(which))
            if writer is None:
                writer = pq.ParquetWriter(tmp, part.schema)
            writer.write_table(part, row_group_size=PARQUET_ROWS)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)


def _dataset(group: PointRuns) -> str:
    return str(((group.runs[0].config or {}).get("evaluator") or {}).get("dataset") or "")


def _names(groups: Sequence[PointRuns]) -> dict[str, str]:
    """Each grid point's name (by :attr:`GridPoint.name`) saying what differs between the points: its
    axes that vary, ``axis=label`` (``strategy=rea, dataset=cifar10``; a field axis by its last part,
    ``population=20``, :func:`~natsray.experiment.group_names.group_names`); ``all seeds`` for the one
    point of a seeds-only sweep. For showing only: directories and the plan keep :attr:`GridPoint.name`."""
    settings = [dict(group.point.labels) for group in groups]
    names = group_names(settings, [group.point.name or "all seeds" for group in groups])
    return {group.point.name: name for group, name in zip(groups, names, strict=True)}


def _legend(group: PointRuns, name: str) -> str:
    """The point's name less its dataset (each dataset has its own panel, titled with it)."""
    dataset = _dataset(group)
    parts = [part for part in name.split(", ") if part.partition("=")[2] != dataset or not dataset]
    return ", ".join(parts) or name


def _figure_jobs(
    groups: Sequence[PointRuns], finished_runs: Sequence[RunData], journals: Any, out: Path
) -> Iterator[tuple[Any, ...]]:
    """The arguments of :func:`~natsray.study.plots.plot_anytime` for the two anytime figures, one at
    a time (none when no run finished)."""
    finished = [g for g in groups if g.runs]
    if not finished:
        return
    names = _names(groups)
    metric = report_metric(finished[0].runs[0])
    objective = _objective_label(finished[0].runs[0])
    simulated = [run.simulated_clock for run in finished_runs]
    clock = "simulated" if all(simulated) else "wall" if not any(simulated) else "mixed"
    for by_time, name in ((True, "anytime_time.png"), (False, "anytime_evaluations.png")):
        found = _incumbents(finished_runs, metric, by_time, journals)
        pairs = dict(zip(map(id, finished_runs), found, strict=True))
        curves = [
            (_legend(g, names[g.point.name]), _dataset(g), *_curves([pairs[id(r)] for r in g.runs], by_time))
            for g in finished
        ]
        yield (curves, metric, objective, by_time, out / name, clock)


def sweep_report(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    loaded: Sequence[RunData | None] | None = None,
    plotter: PlotProcess | None = None,
    show: bool = False,
) -> dict[str, Any]:
    """Tabulate and plot a sweep directory (finished runs; unfinished ones are counted).

    Writes ``sweep_report.{md,csv,json}``, ``anytime_time.png``, ``anytime_evaluations.png`` and
    ``evaluations.parquet`` (:func:`write_evaluations`) to ``out_dir`` (default
    ``SWEEP_DIR/report``); prints nothing unless ``show``.

    Args:
        sweep_dir: The sweep directory.
        out_dir: Where to write (default ``SWEEP_DIR/report``).
        loaded: :func:`load_sweep_runs` of the sweep's planned runs (``plan_runs(load_plan(sweep_dir),
            sweep_dir, typed=False)``, in that order) when the caller has read them already (read
            here otherwise).
        plotter: A :class:`~natsray.study.plot_process.PlotProcess` to draw the figures while this
            process writes the tables (a figure it does not write is drawn here).
        show: Print the Markdown table and where it was written to stdout (``natsray report`` does).

    Returns:
        ``{"points": [row, ...], "runs": [per-run row, ...]}`` as in ``sweep_report.json``.

    Raises:
        ConfigError: ``sweep_dir`` holds no sweep plan.
        ValueError: ``loaded`` is not one entry per planned run, in plan order.
    """
    from natsray.study.plots import plot_anytime

    sweep_dir = Path(sweep_dir)
    plan = load_plan(sweep_dir)
    planned = plan_runs(plan, sweep_dir, typed=False)  # no plugin imported: the stored results suffice
    if loaded is None:
        loaded = load_sweep_runs(sweep_dir, planned)
    elif len(loaded) != len(planned) or any(
        data is not None and data.path != run.run_dir for run, data in zip(planned, loaded, strict=False)
    ):
        raise ValueError(f"loaded: not the {len(planned)} planned runs of {sweep_dir} in plan order")
    groups = _groups(planned, loaded)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    if out_dir is None:  # one from an older natsray gets the .gitignore a new sweep has (if all natsray's)
        ignore_own_output(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    finished_runs = [data for data in loaded if data is not None]
    journals = _journals(finished_runs)
    # the Parquet file is encoded (Arrow, without the GIL) while the tables and plots are made
    with ThreadPoolExecutor(1, thread_name_prefix="natsray-report") as pool:
        written = pool.submit(_write_evaluations, planned, loaded, journals, out / EVALUATIONS_FILE)
        figures = []
        for job in _figure_jobs(groups, finished_runs, journals, out):
            figures.append(job)
            if plotter is not None:
                plotter.submit(job)  # drawn there while the next one's curves and the tables are made here
        drawn = [False] * len(figures)
        axes = [axis.name for axis in plan.axes]
        names = _names(groups)
        rows = [_point_row(group, names[group.point.name]) for group in groups]
        result = {
            "points": rows,
            "runs": [
                {"group": names[g.point.name], **dict(g.point.labels), **_run_row(run, sweep_dir)}
                for g in groups
                for run in g.runs
            ],
        }
        atomic_write_json(out / "sweep_report.json", result)
        markdown = _write_tables(rows, axes, out)
        if show:
            print(markdown)
        if plotter is not None and figures:
            drawn = plotter.results()
        for job, done in zip(figures, drawn, strict=True):
            if not done:
                plot_anytime(*job)
        written.result()
    if show:
        print(f"wrote {out}")
    return result
