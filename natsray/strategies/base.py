"""The strategy interface: pure ask/tell, no Ray, no I/O, no threads.

A strategy proposes :class:`~natsray.records.Candidate`s with :meth:`Strategy.ask` and
learns from finished evaluations with :meth:`Strategy.tell`, in any order. Fitness is a
tuple to MAXIMISE (see :func:`natsray.records.fitness_of`), or ``None`` for a failed
evaluation. :meth:`Strategy.state_dict` is JSON-able and includes the RNG state, so a
run resumed from it continues exactly where it stopped.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from natsray.records import Candidate, candidate_seed
from natsray.search_space import Arch

__all__ = ["Fitness", "Strategy", "rng_from_state", "rng_state"]

Fitness = tuple[float, ...] | None


def rng_state(rng: random.Random) -> list[Any]:
    """JSON-able state of a ``random.Random``."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_state(state: list[Any]) -> random.Random:
    """Inverse of :func:`rng_state`."""
    rng = random.Random()
    rng.setstate((state[0], tuple(state[1]), state[2]))
    return rng


class Strategy(ABC):
    """Base class of search strategies.

    Subclasses set ``Config`` (a frozen dataclass parsed from the ``strategy`` YAML
    section; its ``name`` selects the class), implement :meth:`ask`, :meth:`tell`,
    :meth:`_state` and :meth:`_load_state`, and create candidates with :meth:`_propose`.

    Args:
        config: The strategy's config dataclass.
        num_objectives: Length of the fitness tuples :meth:`tell` receives.
        seed: The run seed; all randomness derives from it.
    """

    Config: ClassVar[type]
    max_objectives: ClassVar[int] = 1

    def __init__(self, config: Any, *, num_objectives: int = 1, seed: int = 0) -> None:
        if num_objectives > self.max_objectives:
            raise ValueError(
                f"strategy {type(self).__name__} optimises at most {self.max_objectives} objective(s), "
                f"got {num_objectives}"
            )
        self.config = config
        self.num_objectives = num_objectives
        self.seed = seed
        self.rng = random.Random(seed)
        self.next_id = 0

    def _propose(self, arch: Arch, parents: tuple[int, ...] = ()) -> Candidate:
        """A new candidate with the next sequential id and its derived seed."""
        candidate = Candidate(self.next_id, arch, parents, candidate_seed(self.seed, self.next_id))
        self.next_id += 1
        return candidate

    @abstractmethod
    def ask(self) -> Candidate | None:
        """The next candidate, or ``None`` when it must wait for results first."""

    @abstractmethod
    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        """Report a finished evaluation (``fitness`` None when it failed)."""

    @property
    def finished(self) -> bool:
        """True when the strategy has nothing more to propose (e.g. it exhausted its space)."""
        return False

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Subclass state as JSON-able data."""

    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_state`."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the search, JSON-able."""
        return {"rng": rng_state(self.rng), "next_id": self.next_id, "strategy": self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        self.rng = rng_from_state(state["rng"])
        self.next_id = int(state["next_id"])
        self._load_state(state["strategy"])
