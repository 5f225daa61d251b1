"""Random search: cells drawn uniformly from the space, the baseline every strategy must beat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from natsray.records import Candidate
from natsray.search_space.operators import random_sample
from natsray.strategies.base import Fitness, Strategy

__all__ = ["RandomSearch", "RandomSearchConfig"]


@dataclass(frozen=True)
class RandomSearchConfig:
    """``strategy`` section of random search (it has no parameters)."""

    name: Literal["random"] = "random"


class RandomSearch(Strategy):
    """Uniform random sampling; results are ignored.

    Without de-duplication, cells are drawn uniformly with replacement (NATS-Bench's random
    search). With ``dedup: arch`` / ``canonical``, uniformly among the cells not proposed yet
    (without replacement; for ``canonical``, among the cells whose isomorphism class is new),
    until the space is exhausted. Any number of candidates may be in flight.
    Objective-agnostic, so it accepts as many objectives as NSGA-II.
    """

    Config = RandomSearchConfig
    max_objectives: ClassVar[int] = 4

    def ask(self) -> Candidate | None:
        if self.seen is None:
            return self._propose(random_sample(self.rng))
        arch = self.seen.sample_unseen(self.rng)
        return None if arch is None else self._propose(arch)

    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        """Nothing to learn."""

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        """Nothing to restore beyond the base state."""
