"""natsray: evolutionary neural architecture search on NATS-Bench TSS, distributed with Ray.

Packages: :mod:`natsray.search_space` (cells, operators, encodings), :mod:`natsray.strategies`,
:mod:`natsray.evaluators`, :mod:`natsray.engine` (one run), :mod:`natsray.experiment` (config,
reports, plots, CLI); :mod:`natsray.models` builds networks and :mod:`natsray.compat` is the
archai-compatible API.
"""

from __future__ import annotations

from natsray.compat import NatsbenchTssSearchSpace, NatsModel, load_arch, save_arch
from natsray.search_space import NUM_ARCHS, OPS, Arch

__all__ = [
    "NUM_ARCHS",
    "OPS",
    "Arch",
    "NatsModel",
    "NatsbenchTssSearchSpace",
    "__version__",
    "load_arch",
    "save_arch",
]
__version__ = "0.1.0"
