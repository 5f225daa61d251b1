"""``natsray measure-latency``: every cell's inference latency on this machine, as a CSV.

The CSV is what a ``type: table`` config joins as ``extra_csv`` (``extra_key: arch``), so a
hardware-aware search can trade accuracy against latency measured on the user's own device
(``configs/nsga2-latency-table.yaml``) instead of a vendor's table nobody can download.

Each cell is timed by :class:`natsray.evaluators.costs.CostEvaluator` (median of
``repeats`` forward passes after ``warmup``, batch ``batch_size``, network C/N of the
config). By default in this process on one torch thread, one cell after another: timings of
concurrent actors sharing a machine's cores and caches do not repeat (docs/evaluators.md gives
the measured figures); ``actors=K`` spreads the cells over K Ray actors of one CPU each, for
machines with cores to spare. Rows are appended and flushed as chunks finish, and a re-run with
the same ``--out`` measures only the cells the file lacks: an interrupted measurement resumes.
The cell order is a seeded permutation of all 15,625 cells, so ``--cells N`` is the first N
of it and a later, larger ``--cells`` extends the same subset.

The file's first line is a comment saying how it was measured (:func:`settings_line`: mode,
actors, torch threads, device, torch version, network and timing settings); readers skip lines
starting with ``#`` (``pandas.read_csv(path, comment="#")``, the table evaluator's
``extra_csv``). Extending a file measured with other settings is refused.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from natsray.engine.checkpoint import drop_torn_line
from natsray.evaluators.base import EvaluatorError
from natsray.evaluators.costs import CostConfig, CostEvaluator
from natsray.records import Candidate
from natsray.search_space import Arch, all_archs

__all__ = [
    "HEADER",
    "ORDER_SALT",
    "cell_order",
    "file_settings",
    "measure_latency",
    "measured_cells",
    "settings_line",
]

HEADER = ("arch", "latency_ms")
"""CSV columns: the NATS arch string and the median latency in milliseconds."""


ORDER_SALT = "natsray measure-latency cell order"
"""Mixed into the order's seed. A plain ``random.Random(seed)`` shuffle draws the same numbers as a
strategy's ``random.Random(seed)`` samples (a shuffle's first swaps place the cells a search of that seed
proposes first at the *end* of the order), so with both seeds at their default 0 the cells measured by
``--cells N`` and those a search proposed were disjoint."""


def cell_order(seed: int) -> list[Arch]:
    """All 15,625 cells in a permutation seeded by ``seed`` (``--cells N`` takes a prefix); its random
    stream is salted (:data:`ORDER_SALT`), independent of the strategies' ``random.Random(seed)``."""
    cells = list(all_archs())
    random.Random(f"{ORDER_SALT} {seed}").shuffle(cells)
    return cells


def settings_line(config: CostConfig, actors: int | None) -> str:
    """The comment line that records how a latency CSV is measured (without the newline)."""
    import torch

    mode = "in-process" if actors is None else f"ray-actors={actors}"
    fields = {
        "mode": mode,
        "threads": config.threads or 1,
        "device": config.device,
        "torch": torch.__version__,
        "dataset": config.dataset,
        "C": config.C,
        "N": config.N,
        "batch_size": config.latency_batch_size,
        "repeats": config.latency_repeats,
    }
    return "# natsray measure-latency: " + " ".join(f"{key}={value}" for key, value in fields.items())


def file_settings(path: Path) -> str | None:
    """The settings comment of a latency CSV (None: none, e.g. a file from an older natsray)."""
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        first = handle.readline().rstrip("\r\n")
    return first if first.startswith("#") else None


def measured_cells(path: Path) -> set[str]:
    """Arch strings already in ``path`` (empty when it does not exist).

    Raises:
        EvaluatorError: the file is not a latency CSV written by this command.
    """
    if not path.is_file():
        return set()
    with open(path, newline="") as handle:
        rows = list(csv.reader(line for line in handle if not line.startswith("#")))
    if not rows or tuple(rows[0]) != HEADER:
        raise EvaluatorError(f"--out {path}: not a natsray latency CSV (expected header {','.join(HEADER)})")
    return {row[0] for row in rows[1:] if len(row) == len(HEADER)}


class _Worker:
    """One Ray actor: a cost evaluator set up once, timing chunks of cells."""

    def __init__(self, config: CostConfig) -> None:
        self.config = config
        self.evaluator = CostEvaluator(config)
        self.evaluator.setup()

    def measure(self, codes: Sequence[int]) -> list[tuple[str, float]]:
        rows = []
        for code in codes:
            arch = Arch.from_code(code)
            score = self.evaluator.score(Candidate(code, arch, seed=0))
            rows.append((arch.to_str(), 1000.0 * float(score.metrics["latency"])))
        return rows


def _chunks(codes: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(codes), size):
        yield list(codes[start : start + size])


def _in_process(config: CostConfig, chunks: Iterator[list[int]]) -> Iterator[list[tuple[str, float]]]:
    worker = _Worker(config)
    for chunk in chunks:
        yield worker.measure(chunk)


def _on_ray(
    config: CostConfig, chunks: Iterator[list[int]], actors: int
) -> Iterator[list[tuple[str, float]]]:
    """Chunks over ``actors`` Ray actors, yielded as they finish (a local Ray is started if none runs)."""
    import ray

    from natsray.engine.cluster import local_token_mode

    started = not ray.is_initialized()
    if started:
        local_token_mode()
        ray.init(num_cpus=actors, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_Worker)
        workers = [remote.remote(config) for _ in range(actors)]
        pending = {}
        idle = list(workers)
        while True:
            while idle:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                worker = idle.pop()
                pending[worker.measure.remote(chunk)] = worker
            if not pending:
                return
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                idle.append(pending.pop(ref))
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def measure_latency(
    out: str | Path,
    config: CostConfig,
    *,
    cells: int | None = None,
    seed: int = 0,
    actors: int | None = None,
    chunk: int = 8,
    report: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Measure the cells ``out`` lacks and append them to it.

    Args:
        out: The CSV (created with the :func:`settings_line` comment and :data:`HEADER`, else
            appended to).
        config: Network, device and timing settings (``objective`` must include ``latency``).
        cells: How many cells of :func:`cell_order` (None: all 15,625).
        seed: The permutation seed.
        actors: None: in this process, one cell at a time (reproducible); K: K Ray actors.
        chunk: Cells per actor call.
        report: Called as ``report(done, total)`` before the first and after each chunk.

    Returns:
        ``(measured now, in the file now)``.

    Raises:
        EvaluatorError: ``out`` exists but is not a latency CSV, or was measured with other settings.
    """
    path = Path(out)
    drop_torn_line(path)  # a row cut by a kill is measured again, never merged with the next
    done = measured_cells(path)
    settings = settings_line(config, actors)
    before = file_settings(path)
    if before is not None and before != settings:
        raise EvaluatorError(
            f"--out {path}: measured with other settings ({before.split(': ', 1)[-1]}); "
            "extend it with the same options, or measure into another --out"
        )
    wanted = cell_order(seed)[:cells]
    todo = [arch.code for arch in wanted if arch.to_str() not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.is_file()
    measured = 0
    chunks = _chunks(todo, chunk)
    results = _in_process(config, chunks) if actors is None else _on_ray(config, chunks, actors)
    if report is not None:
        report(0, len(todo))
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            handle.write(settings + "\n")
            writer.writerow(HEADER)
        for rows in results:
            writer.writerows((arch, f"{ms:.6g}") for arch, ms in rows)
            handle.flush()
            os.fsync(handle.fileno())  # a kill loses at most the chunks still running
            measured += len(rows)
            if report is not None:
                report(measured, len(todo))
    return measured, len(done) + measured
