"""The NATS-Bench topology search space: value type, operators, encodings, canonical form.

Everything here is pure Python (plus numpy for encodings and the canonical table) and needs no
benchmark archive and no torch. The archai-compatible API (:class:`natsray.NatsbenchTssSearchSpace`,
arch files) is :mod:`natsray.compat`, built on this package and :mod:`natsray.models`.
"""

from __future__ import annotations

from natsray.search_space.arch import EDGES, NUM_ARCHS, NUM_EDGES, NUM_NODES, OPS, Arch, all_archs
from natsray.search_space.canonical import canonical, canonical_code, is_canonical, unique_str
from natsray.search_space.encoding import ENCODING_DIMS, ENCODINGS, encode, encode_all, encode_many
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
    "Rng",
    "all_archs",
    "canonical",
    "canonical_code",
    "crossover",
    "encode",
    "encode_all",
    "encode_many",
    "is_canonical",
    "mutate",
    "neighbours",
    "random_sample",
    "unique_str",
]
