"""Search strategies (ask/tell), looked up by their config ``name``: a built-in's short name, a
short name an installed package registers (entry-point group ``natsray.strategies``), or an import
path ``"package.module:Class"`` (:mod:`natsray.registry`, ``docs/extending.md``)."""

from __future__ import annotations

from natsray.registry import ComponentError, ComponentRegistry
from natsray.strategies.base import Fitness, Strategy

__all__ = ["ENTRY_POINT_GROUP", "REGISTRY", "STRATEGIES", "Fitness", "Strategy", "strategy_class"]

STRATEGIES: dict[str, str] = {
    "regularized_evolution": "natsray.strategies.regularized_evolution:RegularizedEvolution",
    "genetic": "natsray.strategies.genetic:GeneticAlgorithm",
    "nsga2": "natsray.strategies.nsga2:NSGA2",
    "random": "natsray.strategies.random_search:RandomSearch",
    "local_search": "natsray.strategies.local_search:LocalSearch",
    "asha_evolution": "natsray.strategies.asha_evolution:AshaEvolution",
    "predictor_evolution": "natsray.strategies.predictor_evolution:PredictorEvolution",
}
"""The built-in strategies: short name -> ``"module:Class"``."""

ENTRY_POINT_GROUP = "natsray.strategies"
"""Entry-point group in which installed packages register strategies by short name."""

REGISTRY = ComponentRegistry("strategy", "strategy.name", STRATEGIES, ENTRY_POINT_GROUP, Strategy)
"""Every strategy name: built-ins, then entry points; import paths as given."""


def strategy_class(name: str) -> type[Strategy]:
    """The strategy class ``name`` stands for (short name or ``"package.module:Class"``).

    Raises:
        ValueError: one line, ``strategy.name: ...`` (see :meth:`ComponentRegistry.load`).
    """
    try:
        return REGISTRY.load(name)
    except ComponentError as exc:
        raise ValueError(f"strategy.name: {exc}") from None
