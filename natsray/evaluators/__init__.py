"""Every way to score a cell, behind one interface (:class:`BaseEvaluator`).

Evaluator classes are looked up by their config ``type`` and imported lazily, so a table-only run
never imports torch: a built-in's short name, a short name an installed package registers
(entry-point group ``natsray.evaluators``), or an import path ``"package.module:Class"``
(:mod:`natsray.registry`, ``docs/extending.md``).
"""

from __future__ import annotations

from natsray.evaluators.base import BaseEvaluator, EvaluatorError, EvaluatorSetupError, Score
from natsray.registry import ComponentError, ComponentRegistry

__all__ = [
    "ENTRY_POINT_GROUP",
    "EVALUATOR_TYPES",
    "REGISTRY",
    "BaseEvaluator",
    "EvaluatorError",
    "EvaluatorSetupError",
    "Score",
    "evaluator_class",
]

EVALUATOR_TYPES: dict[str, str] = {
    "benchmark": "natsray.evaluators.benchmark:BenchmarkEvaluator",
    "table": "natsray.evaluators.table:TableEvaluator",
    "train": "natsray.evaluators.training:TrainingEvaluator",
    "proxy": "natsray.evaluators.proxies:ProxyEvaluator",
    "cost": "natsray.evaluators.costs:CostEvaluator",
    "function": "natsray.evaluators.function:FunctionEvaluator",
}
"""The built-in evaluators: short name -> ``"module:Class"``."""

ENTRY_POINT_GROUP = "natsray.evaluators"
"""Entry-point group in which installed packages register evaluators by short name."""

REGISTRY = ComponentRegistry("evaluator", "evaluator.type", EVALUATOR_TYPES, ENTRY_POINT_GROUP, BaseEvaluator)
"""Every evaluator type: built-ins, then entry points; import paths as given."""


def evaluator_class(type_name: str) -> type[BaseEvaluator]:
    """The evaluator class ``type_name`` stands for (short name or ``"package.module:Class"``).

    Raises:
        EvaluatorError: one line, ``evaluator.type: ...`` (see :meth:`ComponentRegistry.load`).
    """
    try:
        return REGISTRY.load(type_name)
    except ComponentError as exc:
        raise EvaluatorError(f"evaluator.type: {exc}") from None
