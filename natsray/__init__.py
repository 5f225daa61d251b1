"""natsray: evolutionary neural architecture search on NATS-Bench TSS, distributed with Ray.

Packages: :mod:`natsray.search_space` (cells, operators, encodings), :mod:`natsray.strategies`,
:mod:`natsray.evaluators`, :mod:`natsray.config`, :mod:`natsray.engine` (one run),
:mod:`natsray.experiment` (reports, plots), :mod:`natsray.study` (sweeps); :mod:`natsray.models`
builds networks and :mod:`natsray.compat` is the archai-compatible API.

The extension API (``docs/api.md``): subclass :class:`Strategy` or :class:`BaseEvaluator`, which
exchange :class:`Candidate`, :class:`Result`, :class:`Score` and :class:`Arch` values, or
:class:`Callback` to be called as a run makes progress (``docs/callbacks.md``).
"""

from __future__ import annotations

from natsray.callbacks import Callback
from natsray.compat import NatsbenchTssSearchSpace, NatsModel, load_arch, save_arch
from natsray.evaluators.base import BaseEvaluator, EvaluatorError, Score
from natsray.records import Candidate, Objective, Result, Status
from natsray.search_space import NUM_ARCHS, OPS, Arch
from natsray.strategies.base import Fitness, Strategy

__all__ = [
    "NUM_ARCHS",
    "OPS",
    "Arch",
    "BaseEvaluator",
    "Callback",
    "Candidate",
    "EvaluatorError",
    "Fitness",
    "NatsModel",
    "NatsbenchTssSearchSpace",
    "Objective",
    "Result",
    "Score",
    "Status",
    "Strategy",
    "__version__",
    "load_arch",
    "save_arch",
]
__version__ = "0.1.0"
