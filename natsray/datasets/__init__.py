"""Image classification datasets as in-memory tensors: digits, CIFAR-10/100, ImageNet16-120,
and the user's own data (``arrays``: one ``.npz`` file; ``folder``: an image-folder tree).

:func:`load_dataset` reads a dataset once (an evaluator does it in ``setup``) into an
:class:`ImageDataset`: ``uint8`` images of shape ``(n, 3, size, size)`` with ``int64`` labels,
split into ``train`` / ``valid`` / ``test``. Batches are normalised (and, for training,
augmented) on the fly by :meth:`ImageDataset.batches`, so a dataset costs its ``uint8`` size;
:meth:`ImageDataset.to` keeps it resident on an accelerator, where batches are then indexed,
augmented (draws from the candidate's generator, :meth:`ImageDataset.epoch_plan`) and
normalised without a per-batch transfer.

Splits follow NATS-Bench:

- ``cifar10``: NATS's ``cifar10-valid``: ``train`` / ``valid`` are two 25k halves of the
  50k training images, ``test`` is the 10k test set.
- ``cifar100`` and ``ImageNet16-120``: ``train`` is the whole training set, ``valid`` /
  ``test`` are NATS's ``x-valid`` / ``x-test`` halves of the original test (validation) set.
- ``digits``: sklearn's bundled 8x8 handwritten digits (1,797 images, no download), upsampled
  to ``digits_size`` and replicated to 3 channels; a fixed 1,000 / 400 / 397 split.

The halves are NATS's exact ones when the split file NATS used (``cifar-split.txt``,
``cifar100-test-split.txt``, ``imagenet-16-120-test-split.txt`` from AutoDL-Projects
``configs/nas-benchmark/``) sits in the dataset directory; otherwise they are a random
permutation seeded with :data:`SPLIT_SEED` (fixed, documented, but not NATS's own split).

The user's own data (:data:`USER_DATASETS`) brings its own splits:

- ``arrays``: ``data_dir`` names one ``.npz`` file (``numpy.savez``) holding ``x_train``,
  ``y_train``, ``x_valid``, ``y_valid`` and optionally ``x_test``, ``y_test``. Images are
  ``(n, h, w, c)`` (NHWC), ``(n, c, h, w)`` (NCHW) or ``(n, h, w)``, with ``c`` 1 or 3,
  ``uint8`` or any integer / float dtype with values in 0..255 (floats in 0..1 are scaled by
  255); labels are integers ``0..C-1``, every class present in ``y_train``.
- ``folder``: ``data_dir`` names a directory with ``train/``, ``valid/`` and optionally
  ``test/``, each holding one subfolder of images per class (the same class folders in every
  split; class ``i`` is the ``i``-th folder name in sorted order, as torchvision's
  ``ImageFolder``). Images are decoded with Pillow and converted to RGB.

Both are resized (bilinear) to ``image_size`` when it is given, else kept at their own size,
which must then be one square size for every image. The network sees 3 channels: 1-channel
images are replicated, as the digits are. Classes and the per-channel mean / std (of the
training split) come from the data. :func:`check_dataset` checks such a dataset cheaply (file
headers, labels, folder structure; no image decoded) so a run can refuse it before it starts.

A dataset plugin (``dataset: "package.module:function"`` or a short name an installed package
registers under the entry-point group ``natsray.datasets``) is the user's callable returning the
same arrays in memory (:mod:`natsray.datasets.plugin`), checked by the ``.npz`` rules.

The package, lowest module first (imports only run downwards):

- :mod:`~natsray.datasets.image_dataset`: :class:`ImageDataset` / :class:`ImageSplit`, the
  dataset held in memory (normalise, augment, batch, share through Ray).
- :mod:`~natsray.datasets.pixels`: resizing and channel statistics of ``uint8`` image arrays.
- :mod:`~natsray.datasets.builtin`: digits, CIFAR-10/100, ImageNet16-120 and NATS's splits.
- :mod:`~natsray.datasets.user_data`: what ``arrays`` and ``folder`` share (:class:`DatasetInfo`,
  :func:`check_image_size`).
- :mod:`~natsray.datasets.arrays` and :mod:`~natsray.datasets.folder`: the user's two formats.
- :mod:`~natsray.datasets.plugin`: a dataset plugin, the user's function returning the arrays in
  memory (``dataset: "package.module:function"``, entry-point group ``natsray.datasets``).
- :mod:`~natsray.datasets.loading`: :func:`load_dataset` and :func:`check_dataset` by name.
"""

from __future__ import annotations

from natsray.datasets.builtin import DATASETS, SPLIT_SEED
from natsray.datasets.image_dataset import ImageDataset, ImageSplit
from natsray.datasets.loading import check_dataset, load_dataset
from natsray.datasets.plugin import is_dataset_plugin
from natsray.datasets.user_data import USER_DATASETS, DatasetInfo, check_image_size

__all__ = [
    "DATASETS",
    "SPLIT_SEED",
    "USER_DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "ImageSplit",
    "check_dataset",
    "check_image_size",
    "is_dataset_plugin",
    "load_dataset",
]
