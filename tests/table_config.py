"""The ``table`` evaluator section the sweep tests share: NATS-Bench's protocol on a compact table."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def table_evaluator(table: str | Path) -> dict[str, Any]:
    """Search on cifar10's hp-12 validation accuracy, report the hp-200 test accuracy, from ``table``."""
    return {
        "type": "table",
        "table": str(table),
        "dataset": "cifar10",
        "hp": "12",
        "objective": ["valid_accuracy"],
        "report": ["test_accuracy@200"],
    }
