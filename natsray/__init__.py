"""natsray: evolutionary neural architecture search on NATS-Bench TSS, distributed with Ray.

The Python API (:mod:`natsray.api`): :func:`run` a search (with your own scoring function, if
you like), :func:`load_run` a run directory, :func:`sweep` / :func:`load_sweep` many runs.

Packages: :mod:`natsray.search_space` (cells, operators, encodings), :mod:`natsray.strategies`,
:mod:`natsray.evaluators`, :mod:`natsray.config`, :mod:`natsray.engine` (one run),
:mod:`natsray.experiment` (reports, plots), :mod:`natsray.study` (sweeps); :mod:`natsray.models`
builds networks and :mod:`natsray.compat` is the archai-compatible API.

The extension API (``docs/api.md``): subclass :class:`Strategy` or :class:`BaseEvaluator`, which
exchange :class:`Candidate`, :class:`Result`, :class:`Score` and :class:`Arch` values, or
:class:`Callback` to be called as a run makes progress (``docs/callbacks.md``).
"""

from __future__ import annotations

from natsray.api import Best, Run, Sweep, load_run, load_sweep, run, sweep
from natsray.callbacks import Callback
from natsray.compat import NatsbenchTssSearchSpace, NatsModel, load_arch, save_arch
from natsray.errors import FailFastConfigError, FailFastError, StrategyError
from natsray.evaluators.base import BaseEvaluator, EvaluatorError, EvaluatorSetupError, Score
from natsray.evaluators.function import ScoringContext
from natsray.records import Candidate, Objective, Result, Status
from natsray.search_space import NUM_ARCHS, OPS, Arch
from natsray.strategies.base import Fitness, Strategy

__all__ = [
    "NUM_ARCHS",
    "OPS",
    "Arch",
    "BaseEvaluator",
    "Best",
    "Callback",
    "Candidate",
    "EvaluatorError",
    "EvaluatorSetupError",
    "FailFastConfigError",
    "FailFastError",
    "Fitness",
    "NatsModel",
    "NatsbenchTssSearchSpace",
    "Objective",
    "Result",
    "Run",
    "Score",
    "ScoringContext",
    "Status",
    "Strategy",
    "StrategyError",
    "Sweep",
    "__version__",
    "load_arch",
    "load_run",
    "load_sweep",
    "run",
    "save_arch",
    "sweep",
]
__version__ = "0.1.0"
