"""The exit code of a finished run: 1 when most of its evaluations failed (its files are kept)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["FAILED_FRACTION", "mostly_failed"]


FAILED_FRACTION = 0.5
"""A run in which more than this fraction of the evaluations failed exits with code 1 (its files are
kept): the search learned from too few results to be trusted (e.g. an extra_csv covering 4 % of the
space). A sweep exits 1 when more than this fraction of its runs failed or mostly failed."""


_CELL = re.compile(r" \(NATS index \d+\)$")
"""The end of a benchmark or table evaluator's error about one cell (e.g. a cell an ``extra_csv`` lacks): the
cell it names, left out when counting errors (engine.fail_fast masks it too: ``records.failure_kind``)."""


def mostly_failed(run_dir: Path, summary: dict[str, Any], *, quiet: bool = False) -> int:
    """Exit code of a finished run: 1 (with one line on stderr unless ``quiet``) when more than
    :data:`FAILED_FRACTION` of its evaluations failed."""
    evaluations, failed = summary.get("evaluations") or 0, summary.get("failed") or 0
    if evaluations and failed > FAILED_FRACTION * evaluations:
        if quiet:
            return 1
        print(
            f"natsray: {failed} of {evaluations} evaluations failed (more than "
            f"{FAILED_FRACTION:.0%}){_commonest_error(run_dir)}; the errors are in "
            f'{run_dir / "evaluations.jsonl"} ("error")',
            file=sys.stderr,
        )
        return 1
    return 0


def _commonest_error(run_dir: Path) -> str:
    """``", N of them: <error>"`` for the most frequent error of a run's journal ("" if none is read)."""
    from collections import Counter

    from natsray.engine.checkpoint import JOURNAL_FILE, read_journal

    try:  # the gaps of cells (each naming its NATS index, see _CELL) count as one error
        errors = Counter(
            _CELL.sub("", r["error"]) for r in read_journal(run_dir / JOURNAL_FILE) if r.get("error")
        )
    except (OSError, ValueError):
        return ""
    if not errors:
        return ""
    error, count = errors.most_common(1)[0]
    return f", {count} of them: {error}"
