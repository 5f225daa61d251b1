"""Every way to score a cell, behind one interface (:class:`BaseEvaluator`).

Evaluator classes are looked up by their config ``type`` and imported lazily, so a
table-only run never imports torch.
"""

from __future__ import annotations

from natsray.evaluators.base import BaseEvaluator, EvaluatorError, Score
from natsray.registry import load_class

__all__ = ["EVALUATOR_TYPES", "BaseEvaluator", "EvaluatorError", "Score", "evaluator_class"]

EVALUATOR_TYPES: dict[str, str] = {
    "benchmark": "natsray.evaluators.benchmark:BenchmarkEvaluator",
    "table": "natsray.evaluators.table:TableEvaluator",
    "train": "natsray.evaluators.training:TrainingEvaluator",
    "proxy": "natsray.evaluators.proxies:ProxyEvaluator",
    "cost": "natsray.evaluators.costs:CostEvaluator",
}


def evaluator_class(type_name: str) -> type[BaseEvaluator]:
    """The evaluator class registered under ``type_name``."""
    return load_class(EVALUATOR_TYPES, type_name, "evaluator.type", EvaluatorError)
