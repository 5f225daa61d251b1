"""natsray: evolutionary neural architecture search on NATS-Bench TSS, distributed with Ray."""

from __future__ import annotations

from natsray.search_space import NUM_ARCHS, OPS, Arch

__all__ = ["NUM_ARCHS", "OPS", "Arch", "__version__"]
__version__ = "0.1.0"
