"""Search strategies (ask/tell), looked up by their config ``name``: a built-in's short name, a
short name an installed package registers (entry-point group ``natsray.strategies``), or an import
path ``"package.module:Class"`` (:mod:`natsray.registry`, ``docs/extending.md``)."""

from __future__ import annotations

from typing import Any

from natsray.errors import raise_strategy_error
from natsray.registry import ComponentError, ComponentRegistry
from natsray.strategies.base import Fitness, Strategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "STRATEGIES",
    "Fitness",
    "Strategy",
    "build_strategy",
    "strategy_class",
]

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


def build_strategy(config: Any, *, num_objectives: int, seed: int) -> Strategy:
    """The strategy a parsed ``strategy`` section selects, built: ``cls(config, num_objectives=...,
    seed=...)``.

    Raises:
        ValueError: the name selects no strategy (:func:`strategy_class`).
        natsray.errors.StrategyError: its ``__init__`` raised in the user's code (one line naming the
            class, ``__init__``, the exception and the user's ``file:line``).
    """
    cls = strategy_class(config.name)
    try:
        return cls(config, num_objectives=num_objectives, seed=seed)
    except Exception as exc:
        raise_strategy_error(cls, "__init__", exc)
