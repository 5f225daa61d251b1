"""The official NATS-Bench index of each cell, read from a benchmark archive's meta file.

A NATS-tss archive directory holds ``meta.pickle.pbz2``: a bz2-compressed pickle of a dict
whose ``meta_archs`` is the list of arch strings in official index order (15,625 for the full
benchmark). :class:`NatsIndex` maps cells to indices and back without the ``nats_bench`` API.
"""

from __future__ import annotations

import bz2
import operator
import pickle
from collections.abc import Iterable
from pathlib import Path

from natsray.search_space.arch import Arch

__all__ = ["META_FILE", "NatsIndex"]

META_FILE = "meta.pickle.pbz2"
"""Name of the meta file inside a NATS archive directory."""


class NatsIndex:
    """Bidirectional map between cells and their NATS-Bench indices.

    Args:
        archs: The cells (or arch strings) in official index order; all distinct.
        source: Where they came from, for error messages.
    """

    def __init__(self, archs: Iterable[Arch | str], source: str = "NatsIndex") -> None:
        self._archs: tuple[Arch, ...] = tuple(
            self._parse(item, position, source) for position, item in enumerate(archs)
        )
        self._index: dict[Arch, int] = {}
        for position, arch in enumerate(self._archs):
            first = self._index.setdefault(arch, position)
            if first != position:
                raise ValueError(f"{source}: arch at index {position} repeats index {first}: {arch}")

    @staticmethod
    def _parse(item: Arch | str, position: int, source: str) -> Arch:
        if isinstance(item, Arch):
            return item
        try:
            return Arch.from_str(item)
        except ValueError as exc:
            raise ValueError(f"{source}: entry {position} is not a NATS arch string: {exc}") from None

    @classmethod
    def from_archive(cls, path: str | Path) -> NatsIndex:
        """Load from a NATS archive directory (or directly from its ``meta.pickle.pbz2``).

        Raises:
            ValueError: one line naming the path, when the directory or meta file is missing,
                unreadable, or has no valid ``meta_archs`` list.
        """
        path = Path(path)
        if not path.exists():
            raise ValueError(f"NATS archive {str(path)!r} does not exist")
        meta = path / META_FILE if path.is_dir() else path
        if not meta.is_file():
            raise ValueError(
                f"NATS archive {str(path)!r} has no {META_FILE} (expected a NATS-tss archive dir)"
            )
        try:
            with bz2.open(meta, "rb") as f:
                data = pickle.load(f)
        except Exception as exc:
            raise ValueError(f"NATS meta file {str(meta)!r} is not a bz2-compressed pickle: {exc}") from None
        archs = data.get("meta_archs") if isinstance(data, dict) else None
        if not isinstance(archs, (list, tuple)) or not archs:
            raise ValueError(f"NATS meta file {str(meta)!r} has no non-empty 'meta_archs' list")
        return cls(archs, source=f"NATS meta file {str(meta)!r}")

    def __len__(self) -> int:
        return len(self._archs)

    def __contains__(self, arch: object) -> bool:
        return arch in self._index

    def index_of(self, arch: Arch) -> int:
        """The NATS-Bench index of ``arch``.

        Raises:
            ValueError: when ``arch`` is not in this index.
        """
        try:
            return self._index[arch]
        except KeyError:
            raise ValueError(f"arch {arch} is not in this NATS index ({len(self)} archs)") from None

    def arch_at(self, index: int) -> Arch:
        """The cell at NATS-Bench ``index``.

        Raises:
            ValueError: when ``index`` is not an int in ``0..len-1``.
        """
        position = None if isinstance(index, bool) else _as_int(index)
        if position is None or not 0 <= position < len(self):
            raise ValueError(f"NATS index must be an int in 0..{len(self) - 1}, got {index!r}")
        return self._archs[position]


def _as_int(value: object) -> int | None:
    """``value`` as an int if it is integral (int, numpy integer), else None."""
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None
