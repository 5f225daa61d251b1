"""The strategy interface: pure ask/tell, no Ray, no I/O, no threads.

A strategy proposes :class:`~natsray.records.Candidate`s with :meth:`Strategy.ask` and
learns from finished evaluations with :meth:`Strategy.tell`, in any order. Fitness is a
tuple to MAXIMISE (see :func:`natsray.records.fitness_of`), or ``None`` for a failed
evaluation. :meth:`Strategy.state_dict` is JSON-able and includes the RNG state, so a
run resumed from it continues exactly where it stopped.

De-duplication at the source: with ``search_space.dedup`` ``arch`` or ``canonical`` the
engine attaches the run's :class:`~natsray.search_space.seen.SeenCells` (:meth:`Strategy.attach_seen`)
and every strategy proposes novel cells only. :meth:`Strategy._novel` re-draws a proposal
(e.g. tournament + mutation) that lands on a seen cell up to :data:`MAX_REDRAWS` times, then
falls back to a cell drawn uniformly among the unseen ones (counted in ``fallbacks``); it
returns None only when every cell (class) has been proposed, and the strategy is then
:attr:`Strategy.finished` ("space exhausted").
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from natsray.records import Candidate, candidate_seeds
from natsray.search_space import Arch
from natsray.search_space.seen import SeenCells

__all__ = ["MAX_REDRAWS", "Fitness", "Strategy", "rng_from_state", "rng_state"]

MAX_REDRAWS = 100
"""Draws of a proposal that land on seen cells before :meth:`Strategy._novel` falls back to a
uniformly random unseen cell (pymoo's duplicate elimination also retries 100 times)."""

Fitness = tuple[float, ...] | None

_SEED_BLOCK = 1024
"""Candidate seeds are computed this many at a time (:func:`~natsray.records.candidate_seeds`)."""


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
        self.seen: SeenCells | None = None
        self.fallbacks = 0
        self._seeds: tuple[int, list[int]] = (0, [])  # (first id, seeds of ids first..): computed in blocks

    def attach_seen(self, seen: SeenCells | None) -> None:
        """Propose only cells not in ``seen`` from now on (None: no de-duplication).

        The engine calls this before the first :meth:`ask` (and after
        :meth:`load_state_dict` on resume, with the set rebuilt from the journal,
        the outstanding candidates and :meth:`pending_cells`).
        """
        self.seen = seen

    def pending_cells(self) -> Sequence[Arch]:
        """Cells the strategy has drawn but not proposed yet (they count as seen)."""
        return ()

    def _novel(self, draw: Callable[[], Arch]) -> tuple[Arch, bool] | None:
        """``draw()`` until it gives an unseen cell (see the module docstring).

        Without de-duplication this is exactly one ``draw()``.

        Returns:
            ``(cell, True)`` for a drawn cell, ``(cell, False)`` for the fallback (a uniformly
            random unseen cell, whose parents are not the draw's), None when every cell (class)
            has been seen.
        """
        seen = self.seen
        if seen is None:
            return draw(), True
        for _ in range(MAX_REDRAWS):
            arch = draw()
            if arch not in seen:
                return arch, True
        self.fallbacks += 1
        arch = seen.sample_unseen(self.rng)
        return None if arch is None else (arch, False)

    def _propose(self, arch: Arch, parents: tuple[int, ...] = ()) -> Candidate:
        """A new candidate with the next sequential id and its derived seed; marks ``arch`` seen."""
        candidate_id = self.next_id
        first, seeds = self._seeds
        if not 0 <= candidate_id - first < len(seeds):
            first, seeds = self._seeds = (candidate_id, candidate_seeds(self.seed, candidate_id, _SEED_BLOCK))
        candidate = Candidate(candidate_id, arch, parents, seeds[candidate_id - first])
        self.next_id = candidate_id + 1
        if self.seen is not None:
            self.seen.add(arch)
        return candidate

    @abstractmethod
    def ask(self) -> Candidate | None:
        """The next candidate, or ``None`` when it must wait for results first."""

    @abstractmethod
    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        """Report a finished evaluation (``fitness`` None when it failed)."""

    @property
    def finished(self) -> bool:
        """True when the strategy has nothing more to propose (by default: every cell seen and
        every drawn cell proposed)."""
        return self.seen is not None and self.seen.exhausted and not self.pending_cells()

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Subclass state as JSON-able data."""

    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_state`."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the search, JSON-able."""
        return {
            "rng": rng_state(self.rng),
            "next_id": self.next_id,
            "fallbacks": self.fallbacks,
            "strategy": self._state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        self.rng = rng_from_state(state["rng"])
        self.next_id = int(state["next_id"])
        self.fallbacks = int(state.get("fallbacks", 0))
        self._load_state(state["strategy"])
