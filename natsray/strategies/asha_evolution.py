"""Multi-fidelity evolution: regularized evolution at the lowest budget, ASHA promotions above it.

Follows the asynchronous successive halving (ASHA) promotion rule of Li et al. 2020, "A System
for Massively Parallel Hyperparameter Tuning" (MLSys), Algorithm 2 (``get_job``): rung ``k``
holds the results at ``budgets[k]``; whenever a proposal is asked for, the rungs are scanned from
the highest promotable one down, and the best not-yet-promoted cell among the top
``floor(n_k / eta)`` of rung ``k``'s ``n_k`` results is proposed again at ``budgets[k + 1]``. Only
when no rung has such a cell does the bottom rung grow, and the new cell is not drawn at random
(as in ASHA) but bred by regularized evolution (Real et al. 2019) from the bottom rung's results:
the "model-based sampling inside successive halving" idea of BOHB (Falkner et al. 2018) and DEHB
(Awad et al. 2021), with aging evolution as the sampler. Asynchronous promotion suits natsray's
engine: nothing waits for a rung to fill.

The population of the evolution holds bottom-rung results only (fitnesses read at one budget are
comparable); a promoted evaluation is a new candidate (new id and seed, ``parents`` = the
promoted candidate, ``budget`` = the next rung's) that bypasses the seen-set: its cell was seen
at the lower budget, and the engine's cache keys on (cell, budget), so it is evaluated again.
The run's best (``summary.json``) is the best at the highest budget reached.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from typing import Any, Literal

from natsray.records import Candidate, candidate_seed
from natsray.search_space import Arch
from natsray.strategies.base import Fitness
from natsray.strategies.regularized_evolution import RegularizedEvolution, RegularizedEvolutionConfig

__all__ = ["AshaEvolution", "AshaEvolutionConfig"]


@dataclass(frozen=True)
class AshaEvolutionConfig(RegularizedEvolutionConfig):
    """``strategy`` section of ASHA-promoted regularized evolution (fields of
    :class:`~natsray.strategies.regularized_evolution.RegularizedEvolutionConfig`, plus:)

    Attributes:
        name: ``asha_evolution``.
        budgets: The rungs' budgets, strictly increasing (benchmark / table evaluators:
            NATS-Bench hp ``[12, 200]``; training: epochs, e.g. ``[1, 3, 9]``).
        eta: Reduction factor: the top ``1/eta`` of a rung's results are promoted.
    """

    name: Literal["asha_evolution"] = "asha_evolution"  # type: ignore[assignment]
    budgets: tuple[int, ...] = (12, 200)
    eta: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        budgets = self.budgets
        if (
            len(budgets) < 2
            or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in budgets)
            or any(a >= b for a, b in itertools.pairwise(budgets))
        ):
            raise ValueError(
                f"budgets: expected at least two strictly increasing positive ints (e.g. [12, 200]), "
                f"got {list(budgets)!r}"
            )
        if not isinstance(self.eta, int) or isinstance(self.eta, bool) or self.eta < 2:
            raise ValueError(f"eta: must be an int >= 2, got {self.eta!r}")


class AshaEvolution(RegularizedEvolution):
    """Regularized evolution on ``budgets[0]`` with ASHA promotions to the higher budgets.

    Every candidate carries a ``budget``. :meth:`tell` accepts results in any order; a failed
    evaluation is dropped (a failed promotion is not retried: the cell stays promoted from its
    rung). ``finished`` once the space is exhausted (with de-duplication), nothing is in flight
    and no rung has a cell left to promote.
    """

    Config = AshaEvolutionConfig

    def __init__(self, config: AshaEvolutionConfig, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        n = len(config.budgets)
        self._rank = {budget: k for k, budget in enumerate(config.budgets)}
        # rung k: its results sorted best first, as (negated fitness, candidate id, arch code)
        self._rungs: list[list[tuple[tuple[float, ...], int, int]]] = [[] for _ in range(n)]
        self._promoted: list[set[int]] = [set() for _ in range(n - 1)]  # cell keys promoted from rung k
        self._in_flight: set[int] = set()
        self.promotions = 0

    @property
    def rungs(self) -> list[list[tuple[int, Arch, tuple[float, ...]]]]:
        """Per rung, its results best first: ``(candidate id, arch, fitness)``."""
        return [[(i, Arch.from_code(c), tuple(-v for v in k)) for k, i, c in rung] for rung in self._rungs]

    def _cell(self, code: int) -> int:
        """The promotion key of a cell: its de-duplication key (its code without dedup)."""
        return code if self.seen is None else self.seen.key(Arch.from_code(code))

    def _promotable(self) -> tuple[int, int, int] | None:
        """``(rung, candidate id, arch code)`` of the next promotion (ASHA's get_job), or None."""
        eta = self.config.eta
        for k in range(len(self._rungs) - 2, -1, -1):
            rung, promoted = self._rungs[k], self._promoted[k]
            for _, candidate_id, code in rung[: len(rung) // eta]:
                if self._cell(code) not in promoted:
                    return k, candidate_id, code
        return None

    def ask(self) -> Candidate | None:
        promotion = self._promotable()
        if promotion is not None:
            k, parent, code = promotion
            self._promoted[k].add(self._cell(code))
            budget = self.config.budgets[k + 1]
            candidate = Candidate(
                self.next_id, Arch.from_code(code), (parent,), candidate_seed(self.seed, self.next_id), budget
            )
            self.next_id += 1  # no _propose: a promotion neither consults nor marks the seen-set
            self.promotions += 1
        else:
            candidate = super().ask()
            if candidate is None:
                return None
            candidate = candidate._replace(budget=self.config.budgets[0])
        self._in_flight.add(candidate.id)
        return candidate

    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        self._in_flight.discard(candidate.id)
        k = self._rank.get(candidate.budget)  # type: ignore[arg-type]
        if k is None:
            raise ValueError(
                f"asha_evolution: candidate {candidate.id} has budget {candidate.budget!r}, "
                f"not one of {list(self.config.budgets)}"
            )
        if k == 0:
            super().tell(candidate, fitness)
        if fitness is not None:
            entry = (tuple(-float(v) for v in fitness), candidate.id, candidate.arch.code)
            bisect.insort(self._rungs[k], entry)

    @property
    def finished(self) -> bool:
        return super().finished and not self._in_flight and self._promotable() is None

    def _state(self) -> dict[str, Any]:
        return {
            **super()._state(),
            "rungs": [[[list(key), i, code] for key, i, code in rung] for rung in self._rungs],
            "promoted": [sorted(cells) for cells in self._promoted],
            "in_flight": sorted(self._in_flight),
            "promotions": self.promotions,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        super()._load_state(state)
        self._rungs = [
            [(tuple(float(v) for v in key), int(i), int(c)) for key, i, c in rung] for rung in state["rungs"]
        ]
        self._promoted = [{int(c) for c in cells} for cells in state["promoted"]]
        self._in_flight = {int(i) for i in state["in_flight"]}
        self.promotions = int(state["promotions"])
