"""Every way to score a cell, behind one interface (:class:`BaseEvaluator`).

Evaluator classes are looked up by their config ``type`` and imported lazily, so a
table-only run never imports torch.
"""

from __future__ import annotations

import importlib

from natsray.evaluators.base import BaseEvaluator, EvaluatorError, Score

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
    if type_name not in EVALUATOR_TYPES:
        raise EvaluatorError(f"evaluator.type: {type_name!r} is not one of {', '.join(EVALUATOR_TYPES)}")
    module_name, _, class_name = EVALUATOR_TYPES[type_name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
