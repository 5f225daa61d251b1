"""A dataset held in memory (:class:`ImageDataset` of :class:`ImageSplit`): normalised, augmented
and batched on the fly, on the host or resident on an accelerator, and shared through Ray's
object store.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ImageDataset", "ImageSplit"]


@dataclass(frozen=True)
class ImageSplit:
    """One split: ``uint8`` images ``(n, 3, h, w)`` and ``int64`` labels ``(n,)``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray | torch.Tensor) -> ImageSplit:
        """The images at ``indices``, in that order."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageSplit(self.images[index], self.labels[index])


@dataclass(frozen=True)
class ImageDataset:
    """A dataset held in memory, with its normalisation and training augmentation.

    Attributes:
        name: One of :data:`DATASETS`.
        train: Training split.
        valid: Validation split: what a search scores on.
        test: Test split, kept out of search (report only).
        num_classes: Number of classes.
        input_size: Image height = width.
        mean: Per-channel mean in 0..1 units.
        std: Per-channel std in 0..1 units.
        crop_padding: Zero padding of the random crop augmentation (NATS: 4 at 32px, 2 at 16px).
        flip: Whether augmentation flips horizontally (not for digits).
        split_source: Where the train/valid/test halves come from (a NATS file or the seeded rule).
        classes: Class names, index ``i`` for label ``i`` (``folder``: the class folder names;
            ``arrays``: ``"0"`` .. ``"C-1"``; empty for the bundled datasets).
    """

    name: str
    train: ImageSplit
    valid: ImageSplit
    test: ImageSplit
    num_classes: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_padding: int
    flip: bool
    split_source: str
    classes: tuple[str, ...] = ()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` images -> normalised ``float32``, on the images' device."""
        mean, std = self._mean_std(images.device)
        return (images.float() / 255.0 - mean) / std

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return mean.to(device, non_blocking=True), std.to(device, non_blocking=True)

    def draw_augmentation(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The random draws of :meth:`augment` for ``n`` images, from ``generator`` (on its device).

        Drawn in this order: ``flip = rand(n) < 0.5`` (when :attr:`flip`), then the crop's row
        offsets ``dy`` and column offsets ``dx``, each ``randint(0, 2 * crop_padding + 1, (n,))``
        (when ``crop_padding > 0``); what is not drawn is 0.

        Returns:
            ``int64`` tensor of shape ``(3, n)``: rows ``flip`` (0 / 1), ``dy``, ``dx``.
        """
        draws = torch.zeros(3, n, dtype=torch.long, device=generator.device)
        if self.flip:
            draws[0] = torch.rand(n, generator=generator, device=generator.device) < 0.5
        pad = self.crop_padding
        if pad:
            for row in (1, 2):
                draws[row] = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=generator.device)
        return draws

    def apply_augmentation(self, images: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """Flip, then crop with zero padding, ``uint8`` images ``(n, 3, h, w)`` as ``draws`` say.

        Image ``i`` is flipped horizontally when ``draws[0, i]`` is 1, zero-padded by
        :attr:`crop_padding` on every side and cropped back to ``h x w`` starting at row
        ``draws[1, i]``, column ``draws[2, i]`` of the padded image (offset ``crop_padding``
        is the centre). One gather on the images' device; ``draws`` (from
        :meth:`draw_augmentation`) is moved there.
        """
        n, _, h, w = images.shape
        pad = self.crop_padding
        device = images.device
        draws = draws.to(device, non_blocking=True)
        flip, dy, dx = draws[0].bool(), draws[1], draws[2]
        padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
        rows = (dy.view(n, 1) + torch.arange(h, device=device)).view(n, 1, h, 1)
        cols = dx.view(n, 1) + torch.arange(w, device=device)
        # flipping then cropping = cropping the mirrored columns of the (symmetrically) padded image
        cols = torch.where(flip.view(n, 1), (w + 2 * pad - 1) - cols, cols).view(n, 1, 1, w)
        channels = torch.arange(images.shape[1], device=device).view(1, -1, 1, 1)
        return padded[torch.arange(n, device=device).view(n, 1, 1, 1), channels, rows, cols]

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """NATS training augmentation on ``uint8`` images: random flip, then padded random crop.

        :meth:`draw_augmentation` from ``generator``, then :meth:`apply_augmentation`.
        """
        if not self.flip and not self.crop_padding:
            return images
        return self.apply_augmentation(images, self.draw_augmentation(len(images), generator))

    def to(self, device: torch.device | str) -> ImageDataset:
        """This dataset with every split's tensors on ``device`` (``uint8``; no copy when already there).

        :meth:`batches` of a split on the device it is asked for index, augment and normalise
        there: one copy of the dataset per process, no per-batch transfer.
        """
        moved = {}
        for name in ("train", "valid", "test"):
            split: ImageSplit = getattr(self, name)
            moved[name] = ImageSplit(split.images.to(device), split.labels.to(device))
        return replace(self, **moved)

    def epoch_plan(
        self, n: int, batch_size: int, generator: torch.Generator | None, augment: bool
    ) -> torch.Tensor:
        """One epoch's order and augmentation draws, as :meth:`batches` uses them.

        From ``generator``: ``randperm(n)``, then per batch (in order) :meth:`draw_augmentation`
        of that batch's size when ``augment``. Without a generator the order is ``0..n-1``.

        Returns:
            ``int64`` tensor ``(4, n)`` on the generator's device (CPU without one): the image
            order, then the ``flip``, ``dy``, ``dx`` rows of each position.
        """
        if augment and generator is None:
            raise ValueError("batches: augment=True needs a generator")
        device = generator.device if generator is not None else torch.device("cpu")
        plan = torch.zeros(4, n, dtype=torch.long, device=device)
        if generator is not None:
            plan[0] = torch.randperm(n, generator=generator, device=device)
        else:
            plan[0] = torch.arange(n)
        if augment:
            for start in range(0, n, batch_size):
                size = min(batch_size, n - start)
                plan[1:, start : start + size] = self.draw_augmentation(size, generator)
        return plan

    def batches(
        self,
        split: ImageSplit,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        augment: bool = False,
        device: torch.device | str = "cpu",
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised ``(images, labels)`` batches of ``split`` on ``device``.

        The epoch's order and augmentation are drawn up front (:meth:`epoch_plan`) and copied to
        ``device`` once; a split already on ``device`` (:meth:`to`) is indexed there, otherwise
        each batch's ``uint8`` images are indexed on the host and copied. Either way flips and
        crops are :meth:`apply_augmentation` on ``device``, so both give the same batches.

        Args:
            split: The split to iterate.
            batch_size: Images per batch (the last batch may be smaller).
            generator: Shuffles the order and draws the augmentation when given; without it
                the order is the split's own.
            augment: Apply the augmentation (needs ``generator``); a no-op for a dataset
                without flip and crop padding.
            device: Where the batches go.
        """
        if augment and generator is None:
            raise ValueError("batches: augment=True needs a generator")
        device = torch.device(device)
        n = len(split)
        augment = augment and (self.flip or self.crop_padding > 0)
        plan = self.epoch_plan(n, batch_size, generator, augment)
        mean, std = self._mean_std(device)
        resident = split.images.device == device
        order = plan[0].to(split.images.device, non_blocking=True)
        plan = plan.to(device, non_blocking=True)
        labels = split.labels.to(device, non_blocking=True)  # a no-op when resident
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            images = split.images[index]
            if not resident:
                images = images.to(device, non_blocking=True)
            if augment:
                images = self.apply_augmentation(images, plan[1:, start : start + batch_size])
            yield (images.float() / 255.0 - mean) / std, labels[plan[0, start : start + batch_size]]

    def to_shared(self) -> dict[str, Any]:
        """Plain data for Ray's object store: every split as ``numpy`` arrays (zero-copy on read).

        ``ray.put`` stores numpy arrays in shared memory and every actor on a node maps that
        one copy (torch tensors would be pickled: one private copy per actor).
        """
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("train", "valid", "test"):
            split: ImageSplit = fields[name]
            fields[name] = (split.images.numpy(), split.labels.numpy())
        return fields

    @classmethod
    def from_shared(cls, shared: dict[str, Any]) -> ImageDataset:
        """The dataset of :meth:`to_shared`'s output, viewing its arrays (no copy).

        Arrays read from the object store are read-only; the tensors are views on them and
        are never written (batches are indexed copies).
        """
        fields = dict(shared)
        with warnings.catch_warnings():  # torch warns that the read-only arrays are not writable
            warnings.simplefilter("ignore", UserWarning)
            for name in ("train", "valid", "test"):
                images, labels = fields[name]
                fields[name] = ImageSplit(torch.from_numpy(images), torch.from_numpy(labels))
        return cls(**fields)
