"""Regularized (aging) evolution, Real et al. 2019, with NATS-Bench's REA defaults.

Steady state and asynchronous: the population is a queue in the order members joined it
(the order their results were told); each child is the mutation of the best of a random
sample of the population, and when it joins, the OLDEST member dies.

With de-duplication on, a child that lands on a seen cell is re-drawn whole (a new
tournament and a new mutation; see :meth:`natsray.strategies.base.Strategy._novel`), and the
initial random samples are distinct unseen cells.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.search_space.operators import mutation_operator, random_sample
from natsray.strategies.base import Fitness, Strategy
from natsray.strategies.selection import (
    Member,
    check_mutation,
    members_from_json,
    members_to_json,
    tournament,
)

__all__ = ["RegularizedEvolution", "RegularizedEvolutionConfig"]


@dataclass(frozen=True)
class RegularizedEvolutionConfig:
    """``strategy`` section of regularized evolution.

    Attributes:
        name: ``regularized_evolution``.
        population: P, members kept alive (NATS-Bench: 10).
        sample_size: S, members drawn per tournament (NATS-Bench: 3).
        sample_with_replacement: Draw the S members with replacement, as NATS-Bench's
            ``regularized_ea.py`` does (``random.choice`` in a loop); False draws S distinct
            members.
        mutation: Mutation operator name (``node``: NATS-Bench's, a uniform node, then one of
            its input edges, set to a different op).
        mutation_rate: Per-edge rate of the ``rate`` mutation.
    """

    name: Literal["regularized_evolution"] = "regularized_evolution"
    population: int = 10
    sample_size: int = 3
    sample_with_replacement: bool = True
    mutation: str = "node"
    mutation_rate: float = 1 / 6

    def __post_init__(self) -> None:
        if self.population < 1:
            raise ValueError(f"population: must be >= 1, got {self.population}")
        if not 1 <= self.sample_size <= self.population:
            raise ValueError(
                f"sample_size: must be in 1..population ({self.population}), got {self.sample_size}"
            )
        check_mutation(self.mutation, self.mutation_rate)


class RegularizedEvolution(Strategy):
    """Aging evolution.

    Seeding: while the population plus the random samples in flight number fewer than P,
    :meth:`ask` proposes random samples; once they fill the gap it returns None until the
    population holds P members (evolution starts from a full population, as in
    NATS-Bench). From then on every :meth:`ask` returns a child, whatever is in flight.
    A failed evaluation (fitness None) is dropped: it never joins the population (a failed
    random sample is replaced by another one).
    """

    Config = RegularizedEvolutionConfig

    def __init__(self, config: RegularizedEvolutionConfig, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self._population: deque[Member] = deque()
        self._keys: deque[tuple[float, ...]] = deque()  # the members' fitness, for tournaments
        self._seeding: set[int] = set()
        self._mutate = mutation_operator(config.mutation, config.mutation_rate)

    @property
    def population(self) -> list[Member]:
        """The living members, oldest first."""
        return list(self._population)

    def ask(self) -> Candidate | None:
        size = self.config.population
        if len(self._population) < size:
            if len(self._population) + len(self._seeding) >= size:
                return None
            novel = self._novel(lambda: random_sample(self.rng))
            if novel is None:
                return None
            candidate = self._propose(novel[0])
            self._seeding.add(candidate.id)
            return candidate
        members = self._population
        keys = self._keys
        config = self.config
        if self.seen is None:  # the common NATS-protocol case, without the re-draw machinery
            winner = members[
                tournament(keys, self.rng, config.sample_size, replace=config.sample_with_replacement)
            ][0]
            return self._propose(self._mutate(winner.arch, self.rng), (winner.id,))
        winner = members[0][0]

        def draw() -> Arch:
            nonlocal winner
            index = tournament(keys, self.rng, config.sample_size, replace=config.sample_with_replacement)
            winner = members[index][0]
            return self._mutate(winner.arch, self.rng)

        novel = self._novel(draw)
        if novel is None:
            return None
        child, drawn = novel
        return self._propose(child, (winner.id,) if drawn else ())

    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        self._seeding.discard(candidate.id)
        if fitness is None:
            return
        fitness = tuple(fitness)
        self._population.append((candidate, fitness))
        self._keys.append(fitness)
        if len(self._population) > self.config.population:
            self._population.popleft()
            self._keys.popleft()

    def _state(self) -> dict[str, Any]:
        return {"population": members_to_json(self._population), "seeding": sorted(self._seeding)}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._population = deque(members_from_json(state["population"]))
        self._keys = deque(fitness for _, fitness in self._population)
        self._seeding = {int(i) for i in state["seeding"]}
