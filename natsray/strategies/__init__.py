"""Search strategies (ask/tell), looked up by their config ``name``."""

from __future__ import annotations

from natsray.registry import load_class
from natsray.strategies.base import Fitness, Strategy

__all__ = ["STRATEGIES", "Fitness", "Strategy", "strategy_class"]

STRATEGIES: dict[str, str] = {
    "regularized_evolution": "natsray.strategies.regularized_evolution:RegularizedEvolution",
    "genetic": "natsray.strategies.genetic:GeneticAlgorithm",
    "nsga2": "natsray.strategies.nsga2:NSGA2",
    "random": "natsray.strategies.random_search:RandomSearch",
    "local_search": "natsray.strategies.local_search:LocalSearch",
    "asha_evolution": "natsray.strategies.asha_evolution:AshaEvolution",
    "predictor_evolution": "natsray.strategies.predictor_evolution:PredictorEvolution",
}


def strategy_class(name: str) -> type[Strategy]:
    """The strategy class registered under ``name``."""
    return load_class(STRATEGIES, name, "strategy.name")
