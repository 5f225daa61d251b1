"""NSGA-II (Deb et al. 2002): multi-objective generational evolution with (mu + lambda) survival.

With ``screen`` > 1 it is surrogate-assisted NSGA-II with pre-selection: each generation breeds
``screen`` times as many novel children as it evaluates, predicts every objective of each with one
surrogate per objective (:mod:`natsray.strategies.surrogate`, fitted on every successful result so far)
and evaluates the ``population`` children that NSGA-II's own order ranks first on the predictions
(non-domination rank, then crowding distance). This is the pre-selection scheme of surrogate-assisted
evolutionary multi-objective optimisation (Emmerich, Giannakoglou, Naujoks, "Single- and Multiobjective
Evolutionary Optimization Assisted by Gaussian Random Field Metamodels", IEEE TEC 2006; Jin, "Surrogate-
assisted evolutionary computation", 2011), with predictor-guided evolution's surrogates (NPENAS / BANANAS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from natsray.records import Candidate
from natsray.search_space import encode_all
from natsray.search_space.encoding import ENCODINGS
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
from natsray.strategies.surrogate import SURROGATES, TARGETS, SurrogateConfig, make_surrogate

__all__ = ["NSGA2", "NSGA2Config", "nsga2_order"]


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
        screen: Children bred per child evaluated (1: plain NSGA-II). With ``screen`` = k > 1, from
            generation 1 on, k * ``population`` novel children are bred and the ``population`` best
            by predicted objectives are evaluated (see the module docstring).
        surrogate: ``gp`` or ``mlp``: the model fitted per objective when screening.
        encoding: ``onehot`` or ``path``: the surrogate's input.
        target: ``standard``, ``rank`` or ``log``: each objective's transform before fitting
            (:func:`~natsray.strategies.surrogate.transform_targets`).
        kappa: Optimism of the screening: each objective is predicted as mean + kappa * std
            (0: the mean).
        max_train: Most results each surrogate is fitted on: the latest ``max_train`` by id.
    """

    name: Literal["nsga2"] = "nsga2"
    population: int = 20
    crossover: str = "uniform"
    crossover_prob: float = 0.9
    mutation: str = "edge"
    mutation_rate: float = 1 / 6
    screen: int = 1
    surrogate: Literal["gp", "mlp"] = "gp"
    encoding: Literal["onehot", "path"] = "onehot"
    target: Literal["standard", "rank", "log"] = "rank"
    kappa: float = 0.0
    max_train: int = 250

    def __post_init__(self) -> None:
        if self.population < 2:
            raise ValueError(f"population: must be >= 2, got {self.population}")
        check_crossover(self.crossover, self.crossover_prob)
        check_mutation(self.mutation, self.mutation_rate)
        for field in ("screen", "max_train"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}: must be >= 1, got {getattr(self, field)}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate: must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}")
        if self.encoding not in ("onehot", "path") or self.encoding not in ENCODINGS:
            raise ValueError(f"encoding: must be one of onehot, path, got {self.encoding!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target: must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if not math.isfinite(self.kappa) or self.kappa < 0:
            raise ValueError(f"kappa: must be a finite number >= 0, got {self.kappa!r}")


def nsga2_order(points: list[tuple[float, ...]]) -> list[int]:
    """Indices of ``points`` (maximised) in NSGA-II's order of preference: fronts by non-domination rank,
    within a front larger crowding distance first, ties in ``points`` order."""
    ranks, crowding = rank_and_crowding(points)
    return sorted(range(len(points)), key=lambda i: (ranks[i], -crowding[i], i))


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

    With ``screen`` > 1, the latest ``max_train`` successful results (the surrogates' training set)
    and the codes of every cell told successfully are also kept (in :meth:`state_dict`), and the
    children of generation 1 on are pre-selected on predictions (module docstring): bred until
    ``screen * population`` distinct novel cells (not told successfully, not seen; at most
    ``4 * screen * population`` draws), ordered by :func:`nsga2_order` on mean + kappa * std of each
    objective, and the first ``population`` still novel proposed. ``screened`` counts the
    generations that were.
    """

    Config = NSGA2Config
    max_objectives: ClassVar[int] = 4

    def __init__(self, config: NSGA2Config, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self._survivors: list[Member] = []
        self._archive: list[Member] = []
        self._history: list[Member] = []  # the latest max_train successful results, id order (screening)
        self._told_codes: set[int] = set()  # every cell told successfully (screening)
        self.screened = 0

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
        if self.config.screen > 1:
            self._history = (self._history + evaluated)[-self.config.max_train :]
            self._told_codes.update(candidate.arch.code for candidate, _ in evaluated)
        self._survivors = survivors(self._survivors + evaluated, size)
        if not self._survivors:
            return self._random(size)
        ranks, crowding = rank_and_crowding([fitness for _, fitness in self._survivors])
        keys = list(zip((-r for r in ranks), crowding, strict=True))
        if self.config.screen > 1:
            return self._screened(keys, size)
        return self._offspring(self._survivors, keys, size, 2)

    def _screened(self, keys: list[tuple[int, float]], size: int) -> list[Offspring]:
        """``size`` children pre-selected from ``screen * size`` bred ones (class docstring)."""
        config = self.config
        told = self._told_codes
        seen = self.seen
        pool: dict[int, Offspring] = {}
        for _ in range(4 * config.screen * size):
            if len(pool) >= config.screen * size:
                break
            bred = self._offspring(self._survivors, keys, 1, 2, mark=False)
            if not bred:
                break  # every cell (class) seen
            arch, parents = bred[0]
            if arch.code not in told and arch.code not in pool:
                pool[arch.code] = (arch, parents)
        brood = list(pool.values())
        if not brood:
            return self._offspring(self._survivors, keys, size, 2)
        predicted = self._predict([arch.code for arch, _ in brood])
        chosen: list[Offspring] = []
        for index in nsga2_order(predicted):
            arch, parents = brood[index]
            if seen is not None:
                if arch in seen:  # an isomorphic sibling was chosen first
                    continue
                seen.add(arch)
            chosen.append((arch, parents))
            if len(chosen) == size:
                break
        self.screened += 1
        # Too few novel children bred (late in a run without de-duplication): plain ones fill up.
        return chosen + self._offspring(self._survivors, keys, size - len(chosen), 2)

    def _predict(self, codes: list[int]) -> list[tuple[float, ...]]:
        """mean + kappa * std of every objective for each cell of ``codes``, one surrogate per objective
        fitted on the latest ``max_train`` successful results."""
        config = self.config
        rows = self._history
        table = encode_all(config.encoding)
        x = table[[candidate.arch.code for candidate, _ in rows]].astype(np.float64)
        cells = table[codes].astype(np.float64)
        columns = []
        for objective in range(self.num_objectives):
            model = make_surrogate(SurrogateConfig(kind=config.surrogate, target=config.target))
            y = np.array([fitness[objective] for _, fitness in rows])
            model.fit(x, y, seed=(self.seed * 1_000_003 + self.generation * 7 + objective) % 2**31)
            mean, std = model.predict(cells)
            columns.append(mean + config.kappa * std)
        return [tuple(float(v) for v in point) for point in zip(*columns, strict=True)]

    def _population_state(self) -> Any:
        return {
            "survivors": members_to_json(self._survivors),
            "archive": members_to_json(self._archive),
            "history": members_to_json(self._history),
            "told_codes": sorted(self._told_codes),
            "screened": self.screened,
        }

    def _load_population_state(self, state: Any) -> None:
        self._survivors = members_from_json(state["survivors"])
        self._archive = members_from_json(state["archive"])
        self._history = members_from_json(state.get("history", []))
        self._told_codes = {int(code) for code in state.get("told_codes", [])}
        self.screened = int(state.get("screened", 0))
