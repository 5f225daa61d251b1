"""The cells a run has proposed: O(1) membership and uniform sampling of the cells not yet seen.

De-duplication in natsray happens where a proposal is made (as pymoo eliminates duplicates at
infill time): the engine hands every strategy one :class:`SeenCells` for the run, a strategy
re-draws a proposal that lands on a seen cell, and the engine therefore evaluates each cell
(``dedup: arch``) or each isomorphism class (``dedup: canonical``, NATS ``get_unique_str``)
at most once. A cell counts as seen from the moment it is proposed, so two candidates in
flight are never copies of each other.

Sampling without replacement draws uniformly among the unseen *cells* (for ``canonical``:
among the cells whose class is unseen), so random search keeps the distribution of uniform
sampling over the space, just without repeats.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from natsray.search_space.arch import NUM_ARCHS, Arch
from natsray.search_space.canonical import canonical_codes

__all__ = ["SeenCells"]


class SeenCells:
    """The set of cells (or classes) proposed in one run.

    Args:
        dedup: ``arch`` (a cell is seen once proposed) or ``canonical`` (every cell of its
            isomorphism class is seen once one of them is proposed).

    Attributes:
        dedup: The mode.
        total: Classes in the space: 15,625 for ``arch``, 6,466 for ``canonical``.

    Raises:
        ValueError: for another ``dedup`` value.
    """

    def __init__(self, dedup: str) -> None:
        if dedup not in ("arch", "canonical"):
            raise ValueError(f"search_space.dedup: SeenCells needs 'arch' or 'canonical', got {dedup!r}")
        self.dedup = dedup
        if dedup == "canonical":
            table = canonical_codes().tolist()
            self._key = table
            members: dict[int, list[int]] = {}
            for code, key in enumerate(table):
                members.setdefault(key, []).append(code)
            self._members = members
        else:
            self._key = list(range(NUM_ARCHS))
            self._members = {code: [code] for code in range(NUM_ARCHS)}
        self.total = len(self._members)
        self._seen_keys: set[int] = set()
        # Fenwick tree over cell codes, 1 = unseen: the k-th unseen code in O(log n), whatever
        # order cells were seen in (so a resumed run that rebuilds the set draws the same cell).
        self._unseen = NUM_ARCHS
        self._tree = [0] * (NUM_ARCHS + 1)
        for i in range(1, NUM_ARCHS + 1):
            self._tree[i] += 1
            parent = i + (i & -i)
            if parent <= NUM_ARCHS:
                self._tree[parent] += self._tree[i]
        self._step = 1 << NUM_ARCHS.bit_length()

    def key(self, arch: Arch) -> int:
        """The de-duplication key of ``arch``: its code, or its class representative's code."""
        return self._key[arch.code]

    def __contains__(self, arch: Arch) -> bool:
        return self._key[arch.code] in self._seen_keys

    def __len__(self) -> int:
        """Classes seen."""
        return len(self._seen_keys)

    @property
    def exhausted(self) -> bool:
        """True when every class of the space has been seen."""
        return len(self._seen_keys) >= self.total

    def add(self, arch: Arch) -> bool:
        """Mark ``arch``'s class seen; True when it was not seen before."""
        key = self._key[arch.code]
        if key in self._seen_keys:
            return False
        self._seen_keys.add(key)
        tree = self._tree
        for code in self._members[key]:
            i = code + 1
            while i <= NUM_ARCHS:
                tree[i] -= 1
                i += i & -i
        self._unseen -= len(self._members[key])
        return True

    def update(self, archs: Iterable[Arch]) -> None:
        """Mark every cell of ``archs`` seen."""
        for arch in archs:
            self.add(arch)

    def sample_unseen(self, rng: random.Random) -> Arch | None:
        """A cell drawn uniformly among the unseen ones (one ``randrange`` call), None when exhausted."""
        if not self._unseen:
            return None
        rank = rng.randrange(self._unseen)  # the (rank+1)-th unseen code, by Fenwick descent
        tree, position, step = self._tree, 0, self._step
        while step:
            nxt = position + step
            if nxt <= NUM_ARCHS and tree[nxt] <= rank:
                position = nxt
                rank -= tree[nxt]
            step >>= 1
        return Arch.from_code(position)
