"""The NATS-Bench topology search space: value type, operators, encodings, canonical form.

Everything here is pure Python (plus numpy for encodings, PyYAML for arch files) and needs no
benchmark archive; only :class:`NatsModel.arch` builds a torch network (lazily).
"""

from __future__ import annotations

from natsray.search_space.arch import EDGES, NUM_ARCHS, NUM_EDGES, NUM_NODES, OPS, Arch, all_archs
from natsray.search_space.canonical import canonical, is_canonical, unique_str
from natsray.search_space.compat import NatsbenchTssSearchSpace, NatsModel, load_arch, save_arch
from natsray.search_space.encoding import ENCODING_DIMS, ENCODINGS, encode, encode_many
from natsray.search_space.nats_index import NatsIndex
from natsray.search_space.operators import (
    CROSSOVERS,
    MUTATIONS,
    Rng,
    crossover,
    mutate,
    neighbours,
    random_sample,
)

__all__ = [
    "CROSSOVERS",
    "EDGES",
    "ENCODINGS",
    "ENCODING_DIMS",
    "MUTATIONS",
    "NUM_ARCHS",
    "NUM_EDGES",
    "NUM_NODES",
    "OPS",
    "Arch",
    "NatsIndex",
    "NatsModel",
    "NatsbenchTssSearchSpace",
    "Rng",
    "all_archs",
    "canonical",
    "crossover",
    "encode",
    "encode_many",
    "is_canonical",
    "load_arch",
    "mutate",
    "neighbours",
    "random_sample",
    "save_arch",
    "unique_str",
]
