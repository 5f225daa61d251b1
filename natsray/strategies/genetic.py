"""Generational genetic algorithm, and the generational ask/tell machinery NSGA-II shares.

A generational strategy breeds a whole generation at once, hands its candidates out one
:meth:`~Generational.ask` at a time, then returns None until every one of them is told;
the next :meth:`~Generational.ask` breeds the next generation from the told results,
taken in candidate-id order so the tell order within a generation does not matter.

With de-duplication on, each child that lands on a seen cell (or on a sibling of its
generation: a bred cell counts as seen at once) is re-drawn whole — new tournaments, crossover
and mutation (:meth:`~natsray.strategies.base.Strategy._novel`) — and a generation is cut
short only when the space is exhausted.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.search_space.operators import random_sample
from natsray.strategies.base import Fitness, Strategy
from natsray.strategies.selection import (
    Member,
    check_crossover,
    check_mutation,
    members_from_json,
    members_to_json,
    tournament,
    vary,
)

__all__ = ["Generational", "GeneticAlgorithm", "GeneticAlgorithmConfig"]

Offspring = tuple[Arch, tuple[int, ...]]
"""A cell to propose and the ids of its parents."""


class Generational(Strategy):
    """Base of generational strategies: subclasses implement :meth:`_breed`.

    Their ``Config`` has ``population``, ``crossover``, ``crossover_prob``,
    ``mutation`` and ``mutation_rate``.
    """

    def __init__(self, config: Any, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self.generation = -1
        self._queue: list[Offspring] = []
        self._pending: set[int] = set()
        self._told: dict[int, tuple[Candidate, Fitness]] = {}

    def ask(self) -> Candidate | None:
        if not self._queue:
            if self._pending:
                return None
            results = [self._told[i] for i in sorted(self._told)]
            evaluated = [(c, fitness) for c, fitness in results if fitness is not None]
            self._told = {}
            self.generation += 1
            self._queue = list(reversed(self._breed(evaluated)))
            if not self._queue:
                return None  # space exhausted: nothing novel left to breed
        arch, parents = self._queue.pop()
        candidate = self._propose(arch, parents)
        self._pending.add(candidate.id)
        return candidate

    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        if candidate.id not in self._pending:
            raise ValueError(f"tell: candidate {candidate.id} is not pending in generation {self.generation}")
        self._pending.remove(candidate.id)
        self._told[candidate.id] = (candidate, None if fitness is None else tuple(fitness))

    @abstractmethod
    def _breed(self, evaluated: list[Member]) -> list[Offspring]:
        """The next generation, given the successful results of the last one (id order)."""

    def pending_cells(self) -> list[Arch]:
        return [arch for arch, _ in self._queue]

    def _random(self, count: int) -> list[Offspring]:
        return self._brood(lambda: (random_sample(self.rng), ()), count)

    def _brood(self, draw: Callable[[], Offspring], count: int, *, mark: bool = True) -> list[Offspring]:
        """``count`` offspring from ``draw``, novel when de-duplicating, and marked seen if ``mark``
        (siblings are then novel among themselves too)."""
        if self.seen is None:
            return [draw() for _ in range(count)]
        children: list[Offspring] = []
        parents: tuple[int, ...] = ()

        def cell() -> Arch:
            nonlocal parents
            arch, parents = draw()
            return arch

        for _ in range(count):
            novel = self._novel(cell)
            if novel is None:
                break
            arch, drawn = novel
            if mark:
                self.seen.add(arch)
            children.append((arch, parents if drawn else ()))
        return children

    def _offspring(
        self, population: Sequence[Member], keys: Sequence[Any], count: int, size: int, *, mark: bool = True
    ) -> list[Offspring]:
        """``count`` children of tournament winners (by ``keys``, ``size`` drawn with replacement).

        Each child crosses two winners with probability ``crossover_prob`` (else copies one
        winner), then is mutated. ``mark``: as :meth:`_brood`.
        """
        config = self.config

        def child() -> Offspring:
            winners = [population[tournament(keys, self.rng, size)][0]]
            if self.rng.random() < config.crossover_prob:
                winners.append(population[tournament(keys, self.rng, size)][0])
            arch = vary(
                [w.arch for w in winners],
                self.rng,
                crossover_kind=config.crossover,
                mutation_kind=config.mutation,
                mutation_rate=config.mutation_rate,
            )
            return arch, tuple(w.id for w in winners)

        return self._brood(child, count, mark=mark)

    def _state(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "queue": [[arch.to_str(), list(parents)] for arch, parents in self._queue],
            "pending": sorted(self._pending),
            "told": [
                [c.to_dict(), None if fitness is None else list(fitness)]
                for c, fitness in self._told.values()
            ],
            "population": self._population_state(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.generation = int(state["generation"])
        self._queue = [(Arch.from_str(arch), tuple(parents)) for arch, parents in state["queue"]]
        self._pending = {int(i) for i in state["pending"]}
        self._told = {}
        for data, fitness in state["told"]:
            candidate = Candidate.from_dict(data)
            self._told[candidate.id] = (candidate, None if fitness is None else tuple(fitness))
        self._load_population_state(state["population"])

    @abstractmethod
    def _population_state(self) -> Any:
        """The subclass's population as JSON-able data."""

    @abstractmethod
    def _load_population_state(self, state: Any) -> None:
        """Inverse of :meth:`_population_state`."""


@dataclass(frozen=True)
class GeneticAlgorithmConfig:
    """``strategy`` section of the genetic algorithm.

    Attributes:
        name: ``genetic``.
        population: Members per generation (elites included).
        tournament_size: k, members drawn (with replacement) per parent selection.
        crossover: Crossover operator name.
        crossover_prob: Probability that a child crosses two parents instead of copying one.
        mutation: Mutation operator name, applied to every child.
        mutation_rate: Per-edge rate of the ``rate`` mutation.
        elitism: e, best members carried into the next generation without re-evaluation.
    """

    name: Literal["genetic"] = "genetic"
    population: int = 20
    tournament_size: int = 3
    crossover: str = "uniform"
    crossover_prob: float = 0.5
    mutation: str = "edge"
    mutation_rate: float = 1 / 6
    elitism: int = 1

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ValueError(f"population: must be >= 2, got {self.population}")
        if not 1 <= self.tournament_size <= self.population:
            raise ValueError(
                f"tournament_size: must be in 1..population ({self.population}), got {self.tournament_size}"
            )
        if not 0 <= self.elitism < self.population:
            raise ValueError(
                f"elitism: must be in 0..population-1 ({self.population - 1}), got {self.elitism}"
            )
        check_crossover(self.crossover, self.crossover_prob)
        check_mutation(self.mutation, self.mutation_rate)


class GeneticAlgorithm(Generational):
    """Generational GA with tournament selection and elitism.

    Generation 0 is ``population`` random samples. Each later generation's
    population is the elites carried over plus the successful results of the offspring
    just evaluated; failed evaluations are dropped. From it, the top ``elitism`` members
    (ties: lower id) become the next elites and ``population - len(elites)`` children
    are bred. If no member succeeded, the next generation is random again.
    """

    Config = GeneticAlgorithmConfig

    def __init__(self, config: GeneticAlgorithmConfig, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self._elites: list[Member] = []

    @property
    def elites(self) -> list[Member]:
        """The members carried over into the generation being evaluated, best first."""
        return list(self._elites)

    def _breed(self, evaluated: list[Member]) -> list[Offspring]:
        population = self._elites + evaluated
        size = self.config.population
        if not population:
            return self._random(size)
        ranked = sorted(population, key=lambda member: (tuple(-v for v in member[1]), member[0].id))
        self._elites = ranked[: self.config.elitism]
        keys = [fitness for _, fitness in population]
        return self._offspring(population, keys, size - len(self._elites), self.config.tournament_size)

    def _population_state(self) -> Any:
        return members_to_json(self._elites)

    def _load_population_state(self, state: Any) -> None:
        self._elites = members_from_json(state)
