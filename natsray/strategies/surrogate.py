"""Surrogates for predictor-guided search: fit on (encoding, fitness), predict mean and std.

Two models, both deterministic given their ``seed`` and the training rows (in the order given):

- ``gp``: an exact Gaussian process (Rasmussen & Williams, GPML, Algorithm 2.1; numpy + scipy) with an
  RBF kernel on the 0/1 encoding (on one-hot vectors a function of the number of differing edges) plus
  white noise, length scale and noise chosen on a small grid by log marginal likelihood. Its posterior
  std is the latent function's (noise excluded).
  The posterior gives mean and std in closed form. Cheap for the few hundred results a
  sample-efficient search tells: O(n^3) fit, O(n m) per prediction of m candidates.
- ``mlp``: an ensemble of ``members`` small torch MLPs (BANANAS, White et al. 2021: 5 feed-forward
  nets on the path encoding), each trained full-batch with Adam for ``epochs`` steps from its own
  initialisation; mean and std across members. Torch runs on CPU, one thread, under a forked RNG
  (the caller's global torch RNG and thread count are left as they were), so the ensemble is
  bit-reproducible.

With ``target: standard`` the targets are standardised before fitting and predictions are mapped
back, so a std is in the fitness's units (e.g. accuracy points); with ``rank`` or ``log``
(:func:`transform_targets`) predictions stay in the transformed units, which are monotone in fitness,
and :attr:`Surrogate.incumbent` is the best target in those units.

Time budget (measured side by side on the project's loaded 2-core machine): ``gp`` fits 50 / 150 rows in
5 / 23 ms and predicts 300 candidates in about 5 ms; ``mlp`` with 5 members x 200 epochs fits in 2.2 / 4.9 s.
The budget is a fixed amount of work, not a wall-clock limit, so that a run is reproducible; per-proposal
figures of the strategy are in docs/strategies.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["SURROGATES", "TARGETS", "Surrogate", "SurrogateConfig", "make_surrogate", "transform_targets"]

SURROGATES = ("gp", "mlp")
TARGETS = ("standard", "rank", "log")


@dataclass(frozen=True)
class SurrogateConfig:
    """How to build the surrogate.

    Attributes:
        kind: ``gp`` or ``mlp`` (see the module docstring).
        members: Ensemble size of ``mlp``.
        hidden: Width of each of the two hidden layers of ``mlp``.
        epochs: Full-batch Adam steps per ``mlp`` member.
        learning_rate: Adam step size of ``mlp``.
        target: How fitness values become the model's targets (:func:`transform_targets`):
            ``standard`` (standardised), ``rank`` (normal scores of the ranks) or ``log``
            (``-log`` of the gap to the best value, standardised).
    """

    kind: Literal["gp", "mlp"] = "gp"
    members: int = 5
    hidden: int = 32
    epochs: int = 200
    learning_rate: float = 0.01
    target: Literal["standard", "rank", "log"] = "standard"


class Surrogate:
    """A fitted-or-not surrogate model (see the module docstring)."""

    def __init__(self, config: SurrogateConfig) -> None:
        self.config = config
        self._model: object | None = None
        self._shift = 0.0
        self._scale = 1.0
        self.incumbent = 0.0
        """The best training target, in the units of :meth:`predict` (what EI improves on)."""

    @property
    def fitted(self) -> bool:
        return self._model is not None

    @property
    def hyper(self) -> tuple[float, float] | None:
        """``gp``: the (length scale, noise) of the last fit; None otherwise."""
        return (self._model.length, self._model.noise) if isinstance(self._model, _GP) else None

    def fit(
        self, x: np.ndarray, y: np.ndarray, seed: int, *, hyper: tuple[float, float] | None = None
    ) -> None:
        """Fit on ``x`` ``(n, d)`` 0/1 encodings and ``y`` ``(n,)`` fitness values (n >= 1).

        Args:
            x: Encodings.
            y: Fitness values.
            seed: Seed of the ``mlp`` initialisations (``gp`` is deterministic).
            hyper: ``gp`` only: use this (length scale, noise) instead of searching the grid; the
                one used is in :attr:`hyper` afterwards.
        """
        y = np.asarray(y, dtype=np.float64)
        if self.config.target == "standard":
            self._shift = float(np.mean(y))
            spread = float(np.std(y))
            self._scale = spread if spread > 1e-12 else 1.0
            target = (y - self._shift) / self._scale
        else:  # the model's own units: predictions stay in them
            self._shift, self._scale = 0.0, 1.0
            target = transform_targets(y, self.config.target)
        self.incumbent = float(np.max(target)) * self._scale + self._shift
        if self.config.kind == "gp":
            self._model = _fit_gp(np.asarray(x, dtype=np.float64), target, hyper)
        else:
            self._model = _fit_mlp(np.asarray(x, dtype=np.float32), target, seed, self.config)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std ``(m,)`` each for ``x`` ``(m, d)``: in fitness units with ``target:
        standard``, in the transformed target's units otherwise (monotone in fitness).

        Raises:
            RuntimeError: before :meth:`fit`.
        """
        if self._model is None:
            raise RuntimeError("surrogate: predict before fit")
        if isinstance(self._model, _GP):
            mean, std = self._model.predict(np.asarray(x, dtype=np.float64))
        else:
            mean, std = _predict_mlp(self._model, np.asarray(x, dtype=np.float32))
        return mean * self._scale + self._shift, std * self._scale


def transform_targets(y: np.ndarray, kind: str) -> np.ndarray:
    """Fitness values ``(n,)`` -> model targets ``(n,)``, increasing with fitness, mean 0, std 1 or so.

    - ``standard``: ``(y - mean) / std``.
    - ``rank``: normal scores of the ranks, ``Phi^-1((rank + 0.5) / n)`` (ties share the mean rank),
      as HEBO's and SMAC's output warping: a few very bad cells (NATS-Bench's ~10 % accuracy
      diverged ones) no longer stretch the scale, so the model spends its fit on the top.
    - ``log``: ``-log(max(y) - y + 0.01 * spread)``, standardised: differences near the best are
      magnified (spread is ``max - min``, 1 when all are equal).

    For ``standard`` and ``log``, infinite values (e.g. ``naswot``'s ``-inf``) count as the smallest /
    largest finite value, so the targets are finite. ``y`` must hold no NaN
    (:func:`natsray.records.fitness_of` keeps it out).
    """
    y = np.asarray(y, dtype=np.float64)
    if kind == "rank":  # ranks order infinite values too
        from scipy.stats import norm, rankdata

        return norm.ppf((rankdata(y) - 0.5) / len(y))
    finite = y[np.isfinite(y)]
    if finite.size < y.size:  # a proxy's -inf: clipped to the finite range
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        y = np.where(y == -np.inf, low, np.where(y == np.inf, high, y))
    if kind == "log":
        spread = float(np.ptp(y)) or 1.0
        y = -np.log(float(np.max(y)) - y + 0.01 * spread)
    elif kind != "standard":
        raise ValueError(f"target: must be one of {', '.join(TARGETS)}, got {kind!r}")
    spread = float(np.std(y))
    return (y - float(np.mean(y))) / (spread if spread > 1e-12 else 1.0)


def make_surrogate(config: SurrogateConfig) -> Surrogate:
    """An unfitted :class:`Surrogate`.

    Raises:
        ValueError: for an unknown ``kind``.
    """
    if config.kind not in SURROGATES:
        raise ValueError(f"surrogate: must be one of {', '.join(SURROGATES)}, got {config.kind!r}")
    return Surrogate(config)


GP_LENGTH_SCALES = (1.0, 2.0, 4.0, 8.0)
"""RBF length scales tried by ``gp`` (on 0/1 vectors the squared distance is the number of differing
bits: 2 per differing edge in the one-hot encoding)."""
GP_NOISES = (1e-3, 1e-2, 1e-1)
"""Noise variances tried by ``gp``, relative to the standardised targets' (unit) variance."""


class _GP:
    """A fitted exact GP (Rasmussen & Williams, GPML, Algorithm 2.1), unit signal variance."""

    def __init__(
        self, x: np.ndarray, chol: np.ndarray, alpha: np.ndarray, length: float, noise: float
    ) -> None:
        self.x, self.chol, self.alpha, self.length, self.noise = x, chol, alpha, length, noise

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg import solve_triangular

        cross = np.exp(-_sqdist(x, self.x) / (2 * self.length**2))  # (m, n)
        mean = cross @ self.alpha
        v = solve_triangular(self.chol, cross.T, lower=True)
        return mean, np.sqrt(np.maximum(1.0 - np.einsum("ij,ij->j", v, v), 0.0))


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def _fit_gp(x: np.ndarray, y: np.ndarray, hyper: tuple[float, float] | None) -> _GP:
    """The GP of the grid (:data:`GP_LENGTH_SCALES` x :data:`GP_NOISES`) with the largest log marginal
    likelihood (ties: first). A fixed grid, not gradient ascent: 12 Cholesky factorisations of an
    n x n matrix cost about a millisecond each for n in the hundreds, the choice is exact and
    reproducible, and no optimiser can wander off. ``hyper`` (length scale, noise) skips the search."""
    from scipy.linalg import cho_solve

    sq = _sqdist(x, x)
    n = len(y)
    best: _GP | None = None
    best_lml = -np.inf
    for length in GP_LENGTH_SCALES if hyper is None else (hyper[0],):
        gram = np.exp(-sq / (2 * length**2))
        for noise in GP_NOISES if hyper is None else (hyper[1],):
            chol = np.linalg.cholesky(gram + (noise + 1e-8) * np.eye(n))
            alpha = cho_solve((chol, True), y)
            lml = -0.5 * float(y @ alpha) - float(np.log(np.diag(chol)).sum())
            if lml > best_lml:
                best, best_lml = _GP(x, chol, alpha, length, noise), lml
    assert best is not None
    return best


def _fit_mlp(x: np.ndarray, y: np.ndarray, seed: int, config: SurrogateConfig) -> list[object]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            inputs = torch.from_numpy(x)
            target = torch.from_numpy(y.astype(np.float32))
            nets = []
            for member in range(config.members):
                torch.manual_seed(seed * 1000 + member)
                net = torch.nn.Sequential(
                    torch.nn.Linear(x.shape[1], config.hidden),
                    torch.nn.ReLU(),
                    torch.nn.Linear(config.hidden, config.hidden),
                    torch.nn.ReLU(),
                    torch.nn.Linear(config.hidden, 1),
                )
                optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
                for _ in range(config.epochs):
                    optimiser.zero_grad()
                    loss = torch.nn.functional.mse_loss(net(inputs).squeeze(1), target)
                    loss.backward()
                    optimiser.step()
                nets.append(net.eval())
    finally:
        torch.set_num_threads(threads)
    return nets


def _predict_mlp(nets: list[object], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            inputs = torch.from_numpy(x)
            out = np.stack([net(inputs).squeeze(1).numpy() for net in nets]).astype(np.float64)
    finally:
        torch.set_num_threads(threads)
    return out.mean(axis=0), out.std(axis=0)
