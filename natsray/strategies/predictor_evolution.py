"""Predictor-guided evolution: mutate the best cells, let a surrogate pick which child to evaluate.

A variant of NPENAS (Wei et al., "NPENAS: Neural Predictor Guided Evolution for Neural Architecture
Search", IEEE TNNLS 2022) and BANANAS (White, Neiswanger, Savani, "BANANAS: Bayesian Optimization with
Neural Architectures for Neural Architecture Search", AAAI 2021), in the form White, Nolen & Savani
("Local Search is State of the Art for NAS Benchmarks", UAI 2021) found strongest on small spaces:
candidates are the (near) neighbourhood of the best cells so far, ranked by a surrogate fitted on every
result told.

1. **Initial design.** ``num_init`` uniform random cells, never proposed before; a failed one is
   replaced. The surrogate phase starts once ``num_init`` of them succeeded.
2. **Candidates.** Every cell within ``radius`` edges of each of the ``parents`` best members (ties:
   lower id), plus ``explore`` uniform random cells; cells this strategy already proposed (and, with
   de-duplication on, cells the run has seen) are dropped. When the neighbourhoods of the best
   ``parents`` are used up, those of the next ``parents`` members are taken (so the pool stays
   bounded), and when every member's are, a uniform random unproposed cell. ``candidates: all``
   replaces all this with every unproposed cell (BANANAS-style acquisition optimisation over the
   whole space, which 15,625 cells allow). ``candidates: mixed`` (the default) draws the ranking's
   acquisition first (``ei+its``: ``its`` with probability ``its_share``) and takes every unproposed
   cell for an ``its`` ranking, the neighbourhoods for the others: expected improvement exploits
   around the best cells, Thompson sampling over the whole space gets a search out of a basin of
   good-but-not-best cells. With ``stall`` > 0, a ranking made when the best told
   fitness was last improved a positive multiple of ``stall`` successes ago uses those whole-space
   candidates once (a tail guard: a search settled around a local optimum gets one proposal from anywhere
   in the space per ``stall`` evaluations without improvement).
3. **Ranking.** The surrogate (:mod:`natsray.strategies.surrogate`) is refitted on all successful
   results, in id order, once ``refit_every`` new successes have been told since the last fit, on
   rank-transformed targets by default; the candidates are ranked by the acquisition (expected
   improvement by default; descending, ties: lower code) and proposed best first. Further asks before
   the next refit take the next candidates of the same ranking (several workers); an exhausted
   ranking is rebuilt from fresh candidates with the same model.

The strategy never proposes a cell twice, with or without de-duplication: it keeps the codes it has
proposed (``dedup: none`` therefore still evaluates each cell at most once per run, but the run may
re-evaluate a cell isomorphic to one already seen; ``dedup: canonical`` rules that out as well).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from natsray.records import Candidate
from natsray.search_space import NUM_ARCHS, NUM_EDGES, OPS, Arch, encode_all
from natsray.search_space.encoding import ENCODINGS
from natsray.search_space.operators import random_sample
from natsray.strategies.base import Fitness, Strategy
from natsray.strategies.selection import Member, members_from_json, members_to_json
from natsray.strategies.surrogate import SURROGATES, TARGETS, Surrogate, SurrogateConfig, make_surrogate

__all__ = [
    "ACQUISITIONS",
    "PredictorEvolution",
    "PredictorEvolutionConfig",
    "acquisition_scores",
    "draw_acquisition",
]

ACQUISITIONS = ("ucb", "its", "ei", "mean", "ei+its")
GP_RETUNE_EVERY = 10
"""The ``gp`` surrogate searches its (length scale, noise) grid at the first fit and every 10th after;
the fits in between reuse the last choice (one Cholesky factorisation instead of twelve)."""


@dataclass(frozen=True)
class PredictorEvolutionConfig:
    """``strategy`` section of predictor-guided evolution.

    Attributes:
        name: ``predictor_evolution``.
        num_init: Random cells evaluated before the surrogate is used (BANANAS / NPENAS: 10).
        parents: Best members whose neighbourhoods make the candidates.
        radius: Edges a candidate may differ from its parent by: 1 (the 24 neighbours) or 2
            (all 264 cells within two edges, every one- and two-edge mutation).
        explore: Uniform random unproposed cells added to the candidates of each ranking, so the
            surrogate can send the search to another region of the space (0: none).
        candidates: ``evolution`` (the neighbourhoods above plus ``explore`` random cells), ``all``
            (every cell not yet proposed: BANANAS-style acquisition optimisation over the whole
            space, which this small space allows) or ``mixed`` (``all`` for the rankings made by
            ``its``, ``evolution`` for the others).
        encoding: ``onehot`` (30 dims) or ``path`` (155, BANANAS') input of the surrogate.
        surrogate: ``gp`` or ``mlp`` (see :mod:`natsray.strategies.surrogate`).
        target: The surrogate's target: ``standard``, ``rank`` or ``log``
            (:func:`~natsray.strategies.surrogate.transform_targets`).
        ensemble: Members of the ``mlp`` ensemble.
        epochs: Adam steps per ``mlp`` member.
        acquisition: ``ucb`` (mean + kappa * std), ``its`` (one independent Thompson sample per
            candidate from N(mean, std), BANANAS' default), ``ei`` (expected improvement over the best
            told fitness), ``mean``, or ``ei+its`` (each ranking by one of the two, see ``its_share``).
        kappa: Exploration weight of ``ucb``.
        its_share: ``ei+its`` only: share of the rankings made by ``its`` (drawn per ranking from
            the strategy's RNG); the others by ``ei``.
        refit_every: New successful results between surrogate fits.
        stall: Tail guard (0: off). When the best told fitness was last improved ``s`` successful
            results ago (``s`` = successes with a larger id than the best member's) and ``s`` is a
            positive multiple of ``stall``, that ranking is made over every unproposed cell (as
            ``candidates: all``) instead of the neighbourhoods: one whole-space proposal per ``stall``
            evaluations without improvement, so a search stuck around a local optimum gets out.
        max_train: Most results the surrogate is fitted on: the best ``max_train`` (ties: lower id).
            Bounds the fit's cost (O(max_train^3)) however long the run, and keeps the model's
            capacity on the top of the space, where the acquisition looks.
    """

    name: Literal["predictor_evolution"] = "predictor_evolution"
    num_init: int = 10
    parents: int = 3
    radius: int = 1
    explore: int = 200
    candidates: Literal["evolution", "all", "mixed"] = "mixed"
    encoding: Literal["onehot", "path"] = "onehot"
    surrogate: Literal["gp", "mlp"] = "gp"
    target: Literal["standard", "rank", "log"] = "rank"
    ensemble: int = 5
    epochs: int = 200
    acquisition: Literal["ucb", "its", "ei", "mean", "ei+its"] = "ei+its"
    kappa: float = 0.5
    its_share: float = 0.5
    refit_every: int = 1
    max_train: int = 200
    stall: int = 0

    def __post_init__(self) -> None:
        for field in ("num_init", "parents", "ensemble", "epochs", "refit_every", "max_train"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}: must be >= 1, got {getattr(self, field)}")
        if self.stall < 0:
            raise ValueError(f"stall: must be >= 0, got {self.stall}")
        if self.explore < 0:
            raise ValueError(f"explore: must be >= 0, got {self.explore}")
        if self.radius not in (1, 2):
            raise ValueError(f"radius: must be 1 or 2, got {self.radius!r}")
        if self.encoding not in ("onehot", "path") or self.encoding not in ENCODINGS:
            raise ValueError(f"encoding: must be one of onehot, path, got {self.encoding!r}")
        if self.candidates not in ("evolution", "all", "mixed"):
            raise ValueError(f"candidates: must be one of evolution, all, mixed, got {self.candidates!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target: must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate: must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}")
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(
                f"acquisition: must be one of {', '.join(ACQUISITIONS)}, got {self.acquisition!r}"
            )
        if not 0.0 <= self.its_share <= 1.0:
            raise ValueError(f"its_share: must be in [0, 1], got {self.its_share!r}")
        if not math.isfinite(self.kappa) or self.kappa < 0:
            raise ValueError(f"kappa: must be a finite number >= 0, got {self.kappa!r}")


_BALLS: dict[int, np.ndarray] = {}


def ball(radius: int) -> np.ndarray:
    """Codes of the cells differing from each cell on 1..``radius`` edges, ``(15625, k)`` int64,
    row = :attr:`Arch.code`: k = 24 for radius 1 (the cells of :func:`~natsray.search_space.neighbours`),
    264 for radius 2 (the one-edge cells first, then the two-edge ones)."""
    if radius not in _BALLS:
        place = len(OPS) ** np.arange(NUM_EDGES - 1, -1, -1)  # weight of each edge's digit in a code
        codes = np.arange(NUM_ARCHS)
        digits = codes[:, None] // place % len(OPS)  # (15625, 6)
        columns = []
        for edges in itertools.chain.from_iterable(
            itertools.combinations(range(NUM_EDGES), r) for r in range(1, radius + 1)
        ):
            for shifts in itertools.product(range(1, len(OPS)), repeat=len(edges)):
                code = codes.copy()
                for edge, shift in zip(edges, shifts, strict=True):
                    code += ((digits[:, edge] + shift) % len(OPS) - digits[:, edge]) * place[edge]
                columns.append(code)
        _BALLS[radius] = np.stack(columns, axis=1)
    return _BALLS[radius]


def draw_acquisition(kind: str, rng: np.random.Generator, its_share: float) -> str:
    """The acquisition of one ranking: ``ei+its`` is ``its`` with probability ``its_share`` (one uniform
    from ``rng``), else ``ei``; any other ``kind`` is itself (nothing drawn)."""
    if kind != "ei+its":
        return kind
    return "its" if rng.random() < its_share else "ei"


def acquisition_scores(
    kind: str,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    best: float,
    kappa: float,
    rng: np.random.Generator,
    its_share: float = 0.5,
) -> np.ndarray:
    """Acquisition value per candidate (larger is better), ``(m,)`` from ``mean`` / ``std`` ``(m,)``.

    ``its`` draws ``m`` normals from ``rng``; ``ei+its`` draws one uniform and is ``its`` with
    probability ``its_share``, else ``ei``; the others are deterministic.
    """
    kind = draw_acquisition(kind, rng, its_share)
    if kind == "mean":
        return mean
    if kind == "ucb":
        return mean + kappa * std
    if kind == "its":
        return mean + std * rng.standard_normal(len(mean))
    safe = np.maximum(std, 1e-12)
    z = (mean - best) / safe
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0))) if len(z) else z
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return safe * (z * cdf + pdf)


class PredictorEvolution(Strategy):
    """Surrogate-ranked mutation of the best cells (see the module docstring).

    Any number of candidates may be in flight once the initial design is told; results may be
    told in any order (the surrogate is fitted on the successful results sorted by id, so the fit
    depends on which results are in, not on their order). Failed evaluations (fitness None) never
    enter the training set, and their cells are not proposed again. :meth:`state_dict` holds the
    told history, the current ranking and the ids the current model was fitted on; a restored
    strategy refits that model from them (same rows, same seed) only if it needs it.
    """

    Config = PredictorEvolutionConfig

    def __init__(self, config: PredictorEvolutionConfig, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self._members: dict[int, Member] = {}
        self._proposed: set[int] = set()
        self._init_pending: set[int] = set()
        self._ranking: list[tuple[int, int | None]] = []  # (code, parent id), best LAST
        self._fit_ids: list[int] = []
        self.fits = 0
        self._hyper: tuple[float, float] | None = None
        self._model: Surrogate | None = None

    @property
    def finished(self) -> bool:
        return len(self._proposed) >= NUM_ARCHS or super().finished

    def _taken(self, arch: Arch) -> bool:
        return arch.code in self._proposed or (self.seen is not None and arch in self.seen)

    def _random_novel(self) -> Arch | None:
        if self.seen is not None:
            return self.seen.sample_unseen(self.rng)
        arch = random_sample(self.rng)
        while arch.code in self._proposed:
            arch = random_sample(self.rng)
        return arch

    def _submit(self, arch: Arch, parents: tuple[int, ...]) -> Candidate:
        self._proposed.add(arch.code)
        return self._propose(arch, parents)

    def ask(self) -> Candidate | None:
        if self.finished:
            return None
        if len(self._members) < self.config.num_init:
            if len(self._members) + len(self._init_pending) >= self.config.num_init:
                return None
            arch = self._random_novel()
            if arch is None:
                return None
            candidate = self._submit(arch, ())
            self._init_pending.add(candidate.id)
            return candidate
        if not self._fit_ids or len(self._members) - len(self._fit_ids) >= self.config.refit_every:
            self._fit(refit=True)
        for _ in range(2):
            while self._ranking:
                code, parent = self._ranking.pop()
                arch = Arch.from_code(code)
                if not self._taken(arch):
                    return self._submit(arch, () if parent is None else (parent,))
            self._rank()
        arch = self._random_novel()
        return None if arch is None else self._submit(arch, ())

    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        self._init_pending.discard(candidate.id)
        if fitness is not None:
            self._members[candidate.id] = (candidate, tuple(fitness))

    # -- surrogate ---------------------------------------------------------------------------

    def _fit(self, *, refit: bool) -> None:
        """(Re)build the model: on every successful result when ``refit``, else on ``_fit_ids``."""
        config = self.config
        if refit:
            self._fit_ids = sorted(self._members)
            self.fits += 1
        ids = self._fit_ids
        if len(ids) > config.max_train:
            ids = sorted(
                sorted(ids, key=lambda i: (tuple(-v for v in self._members[i][1]), i))[: config.max_train]
            )
        rows = [self._members[i] for i in ids]
        x = encode_all(config.encoding)[[candidate.arch.code for candidate, _ in rows]].astype(np.float64)
        y = np.array([fitness[0] for _, fitness in rows])
        model = make_surrogate(
            SurrogateConfig(
                kind=config.surrogate, members=config.ensemble, epochs=config.epochs, target=config.target
            )
        )
        retune = refit and (self._hyper is None or self.fits % GP_RETUNE_EVERY == 1)
        model.fit(
            x, y, seed=(self.seed * 1_000_003 + self.fits) % 2**31, hyper=None if retune else self._hyper
        )
        self._hyper = model.hyper
        self._model = model
        if refit:
            self._ranking = []

    def _candidates(self, members: list[Member]) -> dict[int, int | None]:
        """Novel codes within ``radius`` of ``members`` -> the id of the first (best) member they are near."""
        if not members:
            return {}
        rows = ball(self.config.radius)[[candidate.arch.code for candidate, _ in members]]  # (p, k)
        flat = rows.ravel()
        codes, first = np.unique(flat, return_index=True)
        owner = first // rows.shape[1]
        pool: dict[int, int | None] = {}
        seen = self.seen
        proposed = self._proposed
        for code, index in zip(codes.tolist(), owner.tolist(), strict=True):
            if code not in proposed and (seen is None or Arch.from_code(code) not in seen):
                pool[code] = members[index][0].id
        return pool

    def _evolved(self) -> dict[int, int | None]:
        """The ``evolution`` candidates: the neighbourhood of the ``parents`` best members (when all of
        it was proposed, of the next ``parents``, and so on) plus ``explore`` random novel cells."""
        ordered = sorted(self._members.values(), key=lambda m: (tuple(-v for v in m[1]), m[0].id))
        step = self.config.parents
        pool: dict[int, int | None] = {}
        for start in range(0, len(ordered), step):
            pool = self._candidates(ordered[start : start + step])
            if pool:
                break
        for _ in range(self.config.explore if pool else 0):
            arch = self._random_novel()
            if arch is not None:
                pool.setdefault(arch.code, None)
        return pool

    def _all_unproposed(self) -> dict[int, int | None]:
        """The ``all`` candidates: every cell not proposed (nor seen, with de-duplication on)."""
        free = np.ones(NUM_ARCHS, dtype=bool)
        free[list(self._proposed)] = False
        codes = np.flatnonzero(free).tolist()
        if self.seen is not None:
            codes = [code for code in codes if Arch.from_code(code) not in self.seen]
        return dict.fromkeys(codes)

    def _stalled(self) -> bool:
        """Whether this ranking is a ``stall`` one: the successes told after the best member (by id) are
        a positive multiple of ``stall``."""
        if not self.config.stall or not self._members:
            return False
        best = min(self._members, key=lambda i: (tuple(-v for v in self._members[i][1]), i))
        since = sum(1 for i in self._members if i > best)
        return since > 0 and since % self.config.stall == 0

    def _rank(self) -> None:
        """Fill ``_ranking`` from fresh candidates, best last."""
        config = self.config
        rng: np.random.Generator | None = None
        kind = config.acquisition
        if config.candidates == "mixed":  # the acquisition is drawn first: it picks the candidates
            rng = np.random.default_rng(self.rng.getrandbits(63))
            kind = draw_acquisition(kind, rng, config.its_share)
            pool = self._all_unproposed() if kind == "its" or self._stalled() else self._evolved()
        else:
            whole = config.candidates == "all" or self._stalled()
            pool = self._all_unproposed() if whole else self._evolved()
        if not pool:
            self._ranking = []
            return
        if rng is None:  # evolution / all: drawn after the candidates
            rng = np.random.default_rng(self.rng.getrandbits(63))
            kind = draw_acquisition(kind, rng, config.its_share)
        if self._model is None:
            self._fit(refit=False)
        assert self._model is not None
        codes = sorted(pool)
        mean, std = self._model.predict(encode_all(config.encoding)[codes].astype(np.float64))
        score = acquisition_scores(kind, mean, std, best=self._model.incumbent, kappa=config.kappa, rng=rng)
        order = np.lexsort((np.asarray(codes), -score))[::-1]  # best last; ties: lower code
        self._ranking = [(codes[i], pool[codes[i]]) for i in order.tolist()]

    # -- state -------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "members": members_to_json([self._members[i] for i in sorted(self._members)]),
            "proposed": sorted(self._proposed),
            "init_pending": sorted(self._init_pending),
            "ranking": [[code, parent] for code, parent in self._ranking],
            "fit_ids": list(self._fit_ids),
            "fits": self.fits,
            "hyper": None if self._hyper is None else list(self._hyper),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._members = {
            candidate.id: (candidate, fitness) for candidate, fitness in members_from_json(state["members"])
        }
        self._proposed = {int(code) for code in state["proposed"]}
        self._init_pending = {int(i) for i in state["init_pending"]}
        self._ranking = [
            (int(code), None if parent is None else int(parent)) for code, parent in state["ranking"]
        ]
        self._fit_ids = [int(i) for i in state["fit_ids"]]
        self.fits = int(state["fits"])
        self._hyper = None if state["hyper"] is None else (float(state["hyper"][0]), float(state["hyper"][1]))
        self._model = None  # rebuilt from _fit_ids and fits when needed
