"""First-improvement local search with random restarts (White, Nolen & Savani 2021).

Each climb starts from the best of ``num_init`` random cells never proposed before, then
visits the current cell's 24 one-edge neighbours in a seeded random order, skipping cells
already proposed in the run (with ``dedup: canonical``, also cells whose isomorphism class was
proposed), and moves to the first neighbour told to be strictly better.
When every neighbour has been told and none is better, the cell is a local optimum and
the search restarts. This follows the reference code of the paper (naszilla's
``local_search`` with ``query_full_nbhd=False``, ``stop_at_minimum=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from natsray.records import Candidate
from natsray.search_space import NUM_ARCHS, Arch
from natsray.search_space.operators import neighbours, random_sample
from natsray.strategies.base import Fitness, Strategy
from natsray.strategies.selection import Member, members_from_json, members_to_json

__all__ = ["LocalSearch", "LocalSearchConfig"]


@dataclass(frozen=True)
class LocalSearchConfig:
    """``strategy`` section of local search.

    Attributes:
        name: ``local_search``.
        num_init: Random cells drawn at each (re)start; the climb starts from their best.
        parallel_neighbours: Neighbours of the current cell evaluated at once.
    """

    name: Literal["local_search"] = "local_search"
    num_init: int = 10
    parallel_neighbours: int = 1

    def __post_init__(self) -> None:
        if self.num_init < 1:
            raise ValueError(f"num_init: must be >= 1, got {self.num_init}")
        if self.parallel_neighbours < 1:
            raise ValueError(f"parallel_neighbours: must be >= 1, got {self.parallel_neighbours}")


class LocalSearch(Strategy):
    """Hill climbing over one-edge neighbours with random restarts.

    A (re)start proposes its ``num_init`` random cells at once and waits for all of them;
    if all fail it draws ``num_init`` more. While climbing, up to ``parallel_neighbours``
    neighbours are in flight; on the first told improvement the search moves there and
    the other neighbours in flight are discarded (their results still count in the run,
    they just do not steer the climb). A failed neighbour counts as not better. The
    search is :attr:`finished` once every cell of the space has been proposed.
    """

    Config = LocalSearchConfig

    def __init__(self, config: LocalSearchConfig, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self.restarts = 0
        self._visited: set[int] = set()
        self._to_sample = config.num_init
        self._sampling: set[int] = set()
        self._samples: list[Member] = []
        self._current: Member | None = None
        self._queue: list[Arch] = []
        self._active: set[int] = set()

    @property
    def current(self) -> Member | None:
        """The cell being climbed from and its fitness (None while (re)starting)."""
        return self._current

    @property
    def finished(self) -> bool:
        return len(self._visited) >= NUM_ARCHS or super().finished

    def _skip(self, arch: Arch) -> bool:
        """Cells this search never proposes: visited ones (its own rule) and seen ones."""
        return arch.code in self._visited or (self.seen is not None and arch in self.seen)

    def ask(self) -> Candidate | None:
        if self.finished:
            return None
        if self._current is None:
            if not self._to_sample:
                return None
            if self.seen is not None:
                arch = self.seen.sample_unseen(self.rng)
                if arch is None:
                    return None
            else:
                arch = random_sample(self.rng)
                while arch.code in self._visited:
                    arch = random_sample(self.rng)
            self._to_sample -= 1
            candidate = self._visit(arch, ())
            self._sampling.add(candidate.id)
            return candidate
        if len(self._active) >= self.config.parallel_neighbours:
            return None
        while self._queue:
            arch = self._queue.pop()
            if not self._skip(arch):
                candidate = self._visit(arch, (self._current[0].id,))
                self._active.add(candidate.id)
                return candidate
        if self._active:
            return None
        self._restart()
        return self.ask()

    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        if candidate.id in self._sampling:
            self._sampling.remove(candidate.id)
            if fitness is not None:
                self._samples.append((candidate, tuple(fitness)))
            if not self._sampling and not self._to_sample:
                if self._samples:
                    best = max(sorted(self._samples, key=lambda m: m[0].id), key=lambda m: m[1])
                    self._move(best)
                else:
                    self._to_sample = self.config.num_init
        elif candidate.id in self._active and self._current is not None:
            self._active.remove(candidate.id)
            if fitness is not None and tuple(fitness) > self._current[1]:
                self._move((candidate, tuple(fitness)))

    def _visit(self, arch: Arch, parents: tuple[int, ...]) -> Candidate:
        self._visited.add(arch.code)
        return self._propose(arch, parents)

    def _move(self, member: Member) -> None:
        self._current = member
        self._samples = []
        self._active = set()
        self._queue = neighbours(member[0].arch)
        self.rng.shuffle(self._queue)

    def _restart(self) -> None:
        self.restarts += 1
        self._current = None
        self._queue = []
        self._to_sample = self.config.num_init

    def _state(self) -> dict[str, Any]:
        return {
            "restarts": self.restarts,
            "visited": sorted(self._visited),
            "to_sample": self._to_sample,
            "sampling": sorted(self._sampling),
            "samples": members_to_json(self._samples),
            "current": None if self._current is None else members_to_json([self._current])[0],
            "queue": [arch.code for arch in self._queue],
            "active": sorted(self._active),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.restarts = int(state["restarts"])
        self._visited = {int(code) for code in state["visited"]}
        self._to_sample = int(state["to_sample"])
        self._sampling = {int(i) for i in state["sampling"]}
        self._samples = members_from_json(state["samples"])
        self._current = None if state["current"] is None else members_from_json([state["current"]])[0]
        self._queue = [Arch.from_code(int(code)) for code in state["queue"]]
        self._active = {int(i) for i in state["active"]}
