"""The NATS-Bench topology search space: value type, operators, encodings, canonical form.

Everything here is pure Python (plus numpy for encodings) and needs no benchmark archive.
"""

from __future__ import annotations

from natsray.search_space.arch import EDGES, NUM_ARCHS, NUM_EDGES, NUM_NODES, OPS, Arch, all_archs

__all__ = ["EDGES", "NUM_ARCHS", "NUM_EDGES", "NUM_NODES", "OPS", "Arch", "all_archs"]
