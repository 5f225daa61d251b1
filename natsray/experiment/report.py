"""Reading run directories: per-run CSV, best cell and plots; tables and plots comparing runs.

A run directory holds ``config.yaml``, ``evaluations.jsonl`` (one JSON object per finished
evaluation), ``checkpoint.json`` and ``summary.json`` (see ``docs/results.md``). The reader
here never writes to the journal: it skips a torn last line (a run killed mid-write, or one
still running) and treats every field but ``arch`` and ``status`` as optional.
The plots themselves are drawn by :mod:`natsray.experiment.plots`.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from natsray.compat import save_arch
from natsray.engine.checkpoint import atomic_write_json, ignore_own_output
from natsray.experiment.best_cells import IDENTIFIERS, describe, most_frequent_best
from natsray.experiment.group_names import config_settings, group_names
from natsray.experiment.journal_table import write_csv
from natsray.experiment.plots import plot_best, plot_pareto, plot_population, plot_seeds
from natsray.experiment.run_data import RunData, load_run
from natsray.search_space import Arch

__all__ = ["RunData", "aggregate_runs", "best_record", "finalize_run", "load_run", "report"]


def _cell(value: Any) -> Any:
    """A ``report.csv`` cell: lists ``;``-joined, None empty."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ";".join(str(item) for item in value)
    return value


def best_record(run: RunData) -> Mapping[str, Any] | None:
    """The evaluated record of the summary's best candidate, else the one of highest fitness
    (ties: the first); None when nothing succeeded."""
    table = run.evaluated_table
    if table.num_rows == 0 or "fitness" not in table.column_names:
        return None
    best_id = (run.summary or {}).get("best_candidate_id")
    scored = pc.is_valid(table.column("fitness"))
    if best_id is not None:
        for name in ("candidate_id", "id"):
            if name in table.column_names and pa.types.is_integer(table.schema.field(name).type):
                hits = pc.and_(scored, pc.fill_null(pc.equal(table.column(name), best_id), False))
                index = pc.index(hits, True).as_py()
                if index >= 0:
                    return run.evaluated_record(index)
    fitness = table.column("fitness").to_pylist()
    candidates = [(tuple(value), -i) for i, value in enumerate(fitness) if value is not None]
    return run.evaluated_record(-max(candidates)[1]) if candidates else None


def finalize_run(run_dir: str | Path) -> None:
    """Write ``evaluations.csv``, ``best_arch.yaml`` and the PNG plots of one run directory.

    Plots (unless the run's ``output.plots`` is false): ``best_so_far.png`` (vs evaluations and
    vs time), ``fitness.png`` (each evaluation with a rolling median and interquartile band) and,
    with two or more objectives, ``pareto_front.png`` (first two objectives, all evaluated cells).

    ``evaluations.csv`` takes its name last (written beside, renamed once the plots are drawn): a
    run interrupted while finishing (a Ctrl-C as its loop ends) has none, and a resume finishes it
    (:func:`natsray.study.sweep.run_state`).
    """
    run = load_run(run_dir)
    csv_path = run.path / "evaluations.csv"
    partial = run.path / ".evaluations.csv.partial"
    try:
        write_csv(run.elapsed_column(), partial)
    except ValueError as exc:
        raise ValueError(f"{run.path / 'evaluations.jsonl'}: {exc}") from None
    _best_and_plots(run)
    os.replace(partial, csv_path)


def _best_and_plots(run: RunData) -> None:
    """``best_arch.yaml`` and the plots of :func:`finalize_run`."""
    best = best_record(run)
    if best is not None:
        dataset = ((run.config or {}).get("evaluator") or {}).get("dataset")
        save_arch(
            Arch.from_str(best["arch"]),
            run.path / "best_arch.yaml",
            dataset=dataset,
            nats_index=best.get("nats_index"),
        )
    if (
        not run.objectives
        or not run.evaluated_table.num_rows
        or not ((run.config or {}).get("output") or {}).get("plots", True)
    ):
        return
    plot_best([run], {run.path.name: [0]}, run.path / "best_so_far.png")
    plot_population(run, run.path / "fitness.png")
    if len(run.objectives) > 1:
        plot_pareto(run, run.path / "pareto_front.png")


def _failed(run: RunData) -> int:
    table = run.evaluated_table
    return table.num_rows and int(pc.sum(pc.not_equal(table.column("status"), "ok")).as_py() or 0)


def _final(run: RunData) -> dict[str, float]:
    """The run's final numbers: best objectives and metrics, counts and seconds."""
    summary = run.summary or {}
    best = best_record(run) or {}
    values: dict[str, Any] = {
        "evaluations": summary.get("evaluations", run.evaluated_table.num_rows),
        "failed": summary.get("failed", _failed(run)),
        "simulated_seconds": summary.get("simulated_seconds"),
        "wall_seconds": summary.get("wall_seconds"),
    }
    objectives = _best_objectives(run, best)
    metrics = _best_metrics(run, best)
    values.update({f"best.{name}": value for name, value in objectives.items()})
    values.update({f"best_metric.{name}": value for name, value in metrics.items()})
    return {key: float(value) for key, value in values.items() if isinstance(value, int | float)}


def _best_metrics(run: RunData, best: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """The report metrics of the run's best cell (``best``: its :func:`best_record`, when known)."""
    return _best_part(run, "metrics", best)


def _best_objectives(run: RunData, best: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """The objectives of the run's best cell (``best``: its :func:`best_record`, when known)."""
    return _best_part(run, "objectives", best)


def _best_part(run: RunData, part: str, best: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``summary.json``'s ``best_<part>``, else the best record's ``<part>`` (metrics or objectives)."""
    found = (run.summary or {}).get(f"best_{part}")
    if found:
        return found
    record = best_record(run) if best is None else best
    return (record or {}).get(part) or {}


def _group_metrics(runs: Sequence[RunData]) -> dict[str, dict[str, Any]]:
    """A group's statistics: :func:`_stats` of the runs' final numbers, identifiers (``nats_index``)
    left out and given instead as the most frequent best cell, as a sweep's report does
    (:func:`~natsray.experiment.best_cells.most_frequent_best`)."""
    skipped = {f"best_metric.{identifier}" for identifier in IDENTIFIERS}
    finals = [{k: v for k, v in _final(run).items() if k not in skipped} for run in runs]
    metrics: dict[str, dict[str, Any]] = dict(_stats(finals))
    if runs:
        found = [_best_metrics(run) for run in runs]
        metrics.update(most_frequent_best(found, runs[0], [_best_objectives(run) for run in runs]))
    return metrics


def _stats(rows: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, sample std (0 for one run), min, max and count of every key across ``rows``."""
    keys = dict.fromkeys(key for row in rows for key in row)
    stats = {}
    for key in keys:
        values = np.array([row[key] for row in rows if key in row and math.isfinite(row[key])])
        if values.size:
            stats[key] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "min": float(values.min()),
                "max": float(values.max()),
                "n": int(values.size),
            }
    return stats


def aggregate_runs(
    run_dirs: Sequence[str | Path | RunData], out_path: str | Path | None = None
) -> dict[str, Any]:
    """Mean / std / min / max of the final numbers of several runs (seeds of one config).

    Args:
        run_dirs: The run directories (or runs already read, e.g. from a sweep's store).
        out_path: Where to write the result as JSON (skipped when None).

    Returns:
        ``{"runs": [dir, ...], "seeds": [...], "metrics": {name: {mean, std, min, max, n}}}``,
        names like ``best.valid_accuracy``, ``best_metric.test_accuracy@200``, ``evaluations``;
        an identifier is never averaged: ``"most frequent best nats_index": {value, seeds, of}``
        instead (:mod:`natsray.experiment.best_cells`).
    """
    runs = [path if isinstance(path, RunData) else load_run(path) for path in run_dirs]
    result = {
        "runs": [str(run.path) for run in runs],
        "seeds": [run.seed for run in runs],
        "metrics": _group_metrics(runs),
    }
    if out_path is not None:
        atomic_write_json(out_path, result)
    return result


def _groups(runs: Sequence[RunData]) -> dict[str, list[int]]:
    """Run indices by group (same config but seed), named by the settings in which the groups' configs
    differ (``strategy=regularized_evolution, dataset=cifar100``:
    :func:`~natsray.experiment.group_names.group_names`); one group by ``strategy/evaluator``."""
    by_key: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        by_key.setdefault(run.group_key, []).append(i)
    members = list(by_key.values())
    settings = [config_settings(runs[group[0]].config) for group in members]
    names = group_names(settings, [runs[group[0]].label for group in members])
    return dict(zip(names, members, strict=True))


def _print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    text = [[_format(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[j]) for line in text)) for j, column in enumerate(columns)]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)))
    for line in text:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def _print_group(group: Mapping[str, Any]) -> None:
    """``mean ± std`` of the best cell's objectives and metrics over a group's runs (2 or more), one line."""
    if len(group["runs"]) < 2:
        return
    parts = [
        f"{name.split('.', 1)[1]} {stats['mean']:.4g} ± {stats['std']:.2g}"
        for name, stats in group["metrics"].items()
        if name.startswith(("best.", "best_metric."))
    ]
    cells = [f"; {name} {describe(entry)}" for name, entry in group["metrics"].items() if "value" in entry]
    print(
        f"{group['name']}: {len(group['runs'])} runs, mean ± std: {', '.join(parts) or '-'}{''.join(cells)}"
    )


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def report(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None) -> dict[str, Any]:
    """Compare runs: a printed table, ``report.json`` / ``report.csv`` and comparison plots.

    Runs of one config that differ only in seed form a group, shown as mean with a ±1 std
    band in ``best_so_far_seeds.png`` and aggregated (as :func:`aggregate_runs`) in the JSON.

    Args:
        run_dirs: Run directories.
        out_dir: Output directory; default ``report/`` inside the runs' common parent (inside
            the run directory for one run).

    Returns:
        ``{"runs": [row, ...], "groups": [{"name", "runs", "metrics"}, ...]}`` as in ``report.json``.
    """
    if not run_dirs:
        raise ValueError("report: give at least one run directory")
    runs = [load_run(path) for path in run_dirs]
    out = (
        Path(out_dir)
        if out_dir is not None
        else Path(os.path.commonpath([r.path.resolve() for r in runs])) / "report"
    )
    if out_dir is None and len(runs) == 1:  # its report goes inside it: one from an older natsray gets
        ignore_own_output(runs[0].path)  # the .gitignore a new run has (when nothing else is in it)
    out.mkdir(parents=True, exist_ok=True)
    groups = _groups(runs)
    group_of = {i: name for name, members in groups.items() for i in members}
    rows = []
    for i, run in enumerate(runs):
        best = best_record(run) or {}
        summary = run.summary or {}
        row = {"run": str(run.path), "group": group_of[i], "seed": run.seed, "best_arch": best.get("arch")}
        row.update(_final(run))
        row["stop_reason"] = summary.get("stop_reason") if run.summary is not None else "unfinished"
        rows.append(row)
    result = {
        "runs": rows,
        "groups": [
            {
                "name": name,
                "runs": [rows[i]["run"] for i in members],
                "metrics": _group_metrics([runs[i] for i in members]),
            }
            for name, members in groups.items()
        ],
    }
    columns = list(dict.fromkeys(key for row in rows for key in row))
    atomic_write_json(out / "report.json", result)
    with open(out / "report.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, restval="")
        writer.writeheader()
        writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    order = [i for members in groups.values() for i in members]
    _print_table([rows[i] for i in order], [c for c in columns if c not in ("run", "best_arch")])
    for group in result["groups"]:
        _print_group(group)
    if all(run.objectives and run.evaluated_table.num_rows for run in runs):
        plot_best(runs, groups, out / "best_so_far.png")
        plot_seeds(runs, groups, out / "best_so_far_seeds.png")
    print(f"wrote {out}")
    return result
