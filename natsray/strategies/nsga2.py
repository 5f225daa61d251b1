"""NSGA-II (Deb et al. 2002): multi-objective generational evolution with (mu + lambda) survival."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from natsray.records import Candidate
from natsray.strategies.base import Fitness
from natsray.strategies.genetic import Generational, Offspring
from natsray.strategies.selection import (
    Member,
    check_crossover,
    check_mutation,
    dominates,
    members_from_json,
    members_to_json,
    non_dominated_sort,
    rank_and_crowding,
)

__all__ = ["NSGA2", "NSGA2Config"]


@dataclass(frozen=True)
class NSGA2Config:
    """``strategy`` section of NSGA-II.

    Attributes:
        name: ``nsga2``.
        population: mu = lambda: survivors kept and children bred per generation.
        crossover: Crossover operator name.
        crossover_prob: Probability that a child crosses two parents instead of copying one.
        mutation: Mutation operator name, applied to every child.
        mutation_rate: Per-edge rate of the ``rate`` mutation.
    """

    name: Literal["nsga2"] = "nsga2"
    population: int = 20
    crossover: str = "uniform"
    crossover_prob: float = 0.9
    mutation: str = "edge"
    mutation_rate: float = 1 / 6

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ValueError(f"population: must be >= 2, got {self.population}")
        check_crossover(self.crossover, self.crossover_prob)
        check_mutation(self.mutation, self.mutation_rate)


def survivors(population: list[Member], size: int) -> list[Member]:
    """NSGA-II survival: whole fronts in rank order, the last one cut by crowding distance.

    Within the cut front, larger crowding distance first (ties: earlier in ``population``).
    Survivors keep their order in ``population``.
    """
    points = [fitness for _, fitness in population]
    keep: list[int] = []
    for front in non_dominated_sort(points):
        if len(keep) + len(front) > size:
            _, crowding = rank_and_crowding([points[i] for i in front])
            by_crowding = sorted(range(len(front)), key=lambda k: -crowding[k])
            keep.extend(front[k] for k in by_crowding[: size - len(keep)])
            break
        keep.extend(front)
    return [population[i] for i in sorted(keep)]


class NSGA2(Generational):
    """NSGA-II over up to 4 objectives.

    Generation 0 is ``population`` random samples. After each generation, the
    survivors (the previous survivors plus the successful new results; failed evaluations
    are dropped) are cut to ``population`` by :func:`survivors`, then
    ``population`` children are bred by binary tournaments on (rank, crowding
    distance), crossover and mutation. If nothing succeeded yet, the next generation is
    random again. :meth:`pareto_front` is the non-dominated set of every successful
    evaluation so far (an archive, independent of survival).
    """

    Config = NSGA2Config
    max_objectives: ClassVar[int] = 4

    def __init__(self, config: NSGA2Config, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self._survivors: list[Member] = []
        self._archive: list[Member] = []

    @property
    def population(self) -> list[Member]:
        """The current survivors (parents of the generation being evaluated), in id order."""
        return list(self._survivors)

    def pareto_front(self) -> list[Member]:
        """Non-dominated successful evaluations so far, in id order (one per cell and fitness)."""
        return list(self._archive)

    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        super().tell(candidate, fitness)
        if fitness is None:
            return
        point = tuple(fitness)
        for member, other in self._archive:
            if dominates(other, point) or (other == point and member.arch == candidate.arch):
                return
        self._archive = [m for m in self._archive if not dominates(point, m[1])] + [(candidate, point)]
        self._archive.sort(key=lambda m: m[0].id)

    def _breed(self, evaluated: list[Member]) -> list[Offspring]:
        size = self.config.population
        self._survivors = survivors(self._survivors + evaluated, size)
        if not self._survivors:
            return self._random(size)
        ranks, crowding = rank_and_crowding([fitness for _, fitness in self._survivors])
        keys = list(zip((-r for r in ranks), crowding, strict=True))
        return self._offspring(self._survivors, keys, size, 2)

    def _population_state(self) -> Any:
        return {"survivors": members_to_json(self._survivors), "archive": members_to_json(self._archive)}

    def _load_population_state(self, state: Any) -> None:
        self._survivors = members_from_json(state["survivors"])
        self._archive = members_from_json(state["archive"])
