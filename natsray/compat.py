"""An archai-compatible NATS-TSS search space, plus the arch-file format of run directories.

:class:`NatsbenchTssSearchSpace` has the method names and semantics of archai's
``archai.discrete_search.search_spaces.benchmark.natsbench_tss.NatsbenchTssSearchSpace``, with
these differences:

- all randomness comes from ``random.Random(seed)`` (archai's ``mutate`` uses the global
  ``random``), and ``random_sample`` draws from all 15,625 cells (archai's
  ``randint(0, len(api))`` can return the out-of-range index 15,625);
- it needs only the archive's ``meta.pickle.pbz2`` (through :class:`NatsIndex`), not the
  ``nats_bench`` API, and works without any archive for everything not index-based;
- models are :class:`NatsModel`, whose ``arch`` (the torch module) is built on first access;
- ``crossover`` is implemented (uniform per edge) instead of raising ``NotImplementedError``.

Arch files are small YAML mappings::

    archid: natsbench-tss-11
    arch: '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|'
    canonical: '|...|'
    dataset: cifar10
    nats_index: 11
"""

from __future__ import annotations

import functools
import random
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from natsray.search_space import operators
from natsray.search_space.arch import Arch
from natsray.search_space.encoding import encode
from natsray.search_space.nats_index import NatsIndex

__all__ = ["DATASET_CLASSES", "NatsModel", "NatsbenchTssSearchSpace", "load_arch", "save_arch"]

DATASET_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
"""Base datasets archai accepts, with their numbers of classes."""

_NATS_ARCHID = re.compile(r"natsbench-tss-([0-9]+)$")


def _archid(arch: Arch, nats_index: int | None) -> str:
    """archai's ``natsbench-tss-{index}`` when the index is known, else ``natsray-tss-{code}``."""
    return f"natsbench-tss-{nats_index}" if nats_index is not None else f"natsray-tss-{arch.code}"


class NatsModel:
    """archai's ``ArchaiModel`` for one NATS-TSS cell.

    Attributes:
        cell: The cell.
        archid: ``natsbench-tss-{index}`` when the NATS index is known, else ``natsray-tss-{code}``.
        metadata: Free-form data (``dataset`` at least).
        num_classes: Classifier width of the network :attr:`arch` builds.
    """

    def __init__(self, cell: Arch, archid: str, metadata: dict[str, Any], num_classes: int = 10) -> None:
        self.cell = cell
        self.archid = archid
        self.metadata = metadata
        self.num_classes = num_classes

    @functools.cached_property
    def arch(self) -> Any:
        """The NATS TinyNetwork (``natsray.models.TinyNet``, C=16, N=5), built on first access."""
        from natsray.models import build_model

        return build_model(self.cell, num_classes=self.num_classes)

    def __repr__(self) -> str:
        return f"NatsModel(archid={self.archid!r}, cell={str(self.cell)!r}, metadata={self.metadata!r})"


def save_arch(
    arch: Arch, path: str | Path, *, dataset: str | None = None, nats_index: int | None = None
) -> None:
    """Write ``arch`` as a small YAML arch file (see the module docstring)."""
    data: dict[str, Any] = {
        "archid": _archid(arch, nats_index),
        "arch": str(arch),
        "canonical": str(arch.canonical()),
    }
    if dataset is not None:
        data["dataset"] = dataset
    if nats_index is not None:
        data["nats_index"] = int(nats_index)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _read_arch_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"arch file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"arch file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"arch file {str(path)!r} must hold a YAML mapping with an 'arch' key")
    return data


def _arch_from_file(data: dict[str, Any], path: str | Path, index: NatsIndex | None) -> Arch:
    if "arch" in data:
        try:
            return Arch.from_str(data["arch"])
        except ValueError as exc:
            raise ValueError(f"arch file {str(path)!r}: field 'arch': {exc}") from None
    match = _NATS_ARCHID.match(str(data.get("archid", "")))
    if match is None:
        raise ValueError(f"arch file {str(path)!r} has neither 'arch' nor an 'archid: natsbench-tss-N'")
    if index is None:
        raise ValueError(
            f"arch file {str(path)!r} names only archid {data['archid']!r}: resolving it needs a "
            "NATS archive (natsbench_location)"
        )
    return index.arch_at(int(match.group(1)))


def load_arch(path: str | Path) -> Arch:
    """Read the cell of an arch file written by :func:`save_arch`.

    Raises:
        ValueError: one line naming the file when it is missing, malformed, or names only a
            NATS index (use :meth:`NatsbenchTssSearchSpace.load_arch` with an archive then).
    """
    return _arch_from_file(_read_arch_file(path), path, None)


class NatsbenchTssSearchSpace:
    """archai's NATS-Bench TSS search space (see the module docstring for the differences).

    Args:
        natsbench_location: A NATS-tss archive directory; needed only by index-based methods.
        base_dataset: ``cifar10``, ``cifar100`` or ``ImageNet16-120`` (sets the classifier width).
        seed: Seed of this space's own ``random.Random``.

    Raises:
        ValueError: one line on an unknown dataset or an unusable archive.
    """

    OPS: tuple[str, ...] = ("none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "skip_connect")

    def __init__(
        self,
        natsbench_location: str | Path | None = None,
        base_dataset: str = "cifar10",
        seed: int | None = 1,
    ) -> None:
        if base_dataset not in DATASET_CLASSES:
            raise ValueError(f"base_dataset {base_dataset!r} is not one of {', '.join(DATASET_CLASSES)}")
        self.natsbench_location = None if natsbench_location is None else Path(natsbench_location)
        self.base_dataset = base_dataset
        self.index = None if natsbench_location is None else NatsIndex.from_archive(natsbench_location)
        self.rng = random.Random(seed)

    def _require_index(self, what: str) -> NatsIndex:
        if self.index is None:
            raise ValueError(
                f"{what} needs natsbench_location (a NATS-tss archive dir with meta.pickle.pbz2)"
            )
        return self.index

    def _nats_index(self, cell: Arch) -> int | None:
        return self.index.index_of(cell) if self.index is not None and cell in self.index else None

    def _model(self, cell: Arch) -> NatsModel:
        return NatsModel(
            cell,
            _archid(cell, self._nats_index(cell)),
            {"dataset": self.base_dataset},
            num_classes=DATASET_CLASSES[self.base_dataset],
        )

    def model_from_natsbench_tss(self, natsbench_id: int) -> NatsModel:
        """The model of the cell at NATS index ``natsbench_id`` (needs ``natsbench_location``)."""
        return self._model(self._require_index("model_from_natsbench_tss").arch_at(natsbench_id))

    def random_sample(self) -> NatsModel:
        """A model of a cell drawn uniformly from all 15,625."""
        return self._model(operators.random_sample(self.rng))

    def mutate(self, model: NatsModel) -> NatsModel:
        """A uniformly chosen one-edge neighbour of ``model`` (as archai: one of 24)."""
        return self._model(operators.mutate_edge(model.cell, self.rng))

    def crossover(self, models: Sequence[NatsModel]) -> NatsModel:
        """A uniform per-edge crossover of 2 or more models."""
        return self._model(operators.crossover_uniform([m.cell for m in models], self.rng))

    def encode(self, model: NatsModel) -> np.ndarray:
        """archai's 24-dim encoding of ``model``'s cell."""
        return encode(model.cell, "archai")

    def save_arch(self, model: NatsModel, path: str | Path) -> None:
        """Write ``model``'s arch file (with its NATS index when an archive is known)."""
        save_arch(model.cell, path, dataset=self.base_dataset, nats_index=self._nats_index(model.cell))

    def load_arch(self, path: str | Path) -> NatsModel:
        """Read an arch file: ours, or archai's ``archid: natsbench-tss-N`` (needs an archive).

        Warns when the file was saved for a different dataset, as archai does.
        """
        data = _read_arch_file(path)
        cell = _arch_from_file(data, path, self.index)
        dataset = data.get("dataset")
        if dataset is not None and dataset != self.base_dataset:
            warnings.warn(
                f"arch file {str(path)!r} was saved for dataset {dataset!r}, this space uses "
                f"{self.base_dataset!r}",
                stacklevel=2,
            )
        return self._model(cell)

    def save_model_weights(self, model: NatsModel, path: str | Path) -> None:
        """Write ``model.arch``'s weights (torch state dict)."""
        from natsray.models import save_weights

        save_weights(model.arch, path)

    def load_model_weights(self, model: NatsModel, path: str | Path) -> None:
        """Load weights written by :meth:`save_model_weights` into ``model.arch``."""
        from natsray.models import load_weights

        load_weights(model.arch, path)
