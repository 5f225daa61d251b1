"""The training data path: batches equal a reference of the documented augmentation, host and resident.

The reference draws from the candidate's generator in the documented order (``randperm`` of the
split, then per batch: flips, row offsets, column offsets) and crops each image with numpy.
The host path indexes the CPU tensors and copies each batch to the device; the resident path
(``ImageDataset.to(device)``) indexes on the device. On a machine without a GPU both run on CPU
(and the host path is also checked against ``augment`` applied batch by batch, the pre-resident
implementation); with CUDA the resident path runs on the GPU.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from natsray.config import load_config
from natsray.datasets import ImageDataset, ImageSplit, load_dataset
from natsray.engine.cluster import check_resources
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator
from natsray.records import Candidate
from natsray.search_space import Arch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CONV = Arch.from_str(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
)


def _synthetic(size: int, pad: int, flip: bool, n: int = 70) -> ImageDataset:
    generator = torch.Generator().manual_seed(1)

    def split(count: int) -> ImageSplit:
        images = torch.randint(0, 256, (count, 3, size, size), generator=generator, dtype=torch.uint8)
        return ImageSplit(images, torch.randint(0, 10, (count,), generator=generator))

    return ImageDataset(
        name="cifar10", train=split(n), valid=split(9), test=split(3), num_classes=10, input_size=size,
        mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), crop_padding=pad, flip=flip, split_source="test",
    )  # fmt: skip


DATASETS = {
    "cifar-like 32px, pad 4, flip": lambda: _synthetic(32, 4, True),
    "imagenet16-like 16px, pad 2, flip": lambda: _synthetic(16, 2, True),
    "digits 16px, pad 2, no flip": lambda: load_dataset("digits", digits_size=16),
}


def _reference(data: ImageDataset, split: ImageSplit, batch_size: int, seed: int) -> list[tuple]:
    """The documented augmentation, image by image in numpy, from the documented draw order."""
    generator = torch.Generator().manual_seed(seed)
    n, pad = len(split), data.crop_padding
    order = torch.randperm(n, generator=generator).numpy()
    images, labels = split.images.numpy(), split.labels.numpy()
    mean = np.asarray(data.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(data.std, dtype=np.float32).reshape(3, 1, 1)
    batches = []
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        m = len(index)
        flips = (torch.rand(m, generator=generator) < 0.5).numpy() if data.flip else np.zeros(m, bool)
        dy = torch.randint(0, 2 * pad + 1, (m,), generator=generator).numpy()
        dx = torch.randint(0, 2 * pad + 1, (m,), generator=generator).numpy()
        out = []
        for i, image in enumerate(images[index]):
            if flips[i]:
                image = image[:, :, ::-1]
            padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)))
            crop = padded[:, dy[i] : dy[i] + image.shape[1], dx[i] : dx[i] + image.shape[2]]
            out.append((crop.astype(np.float32) / np.float32(255.0) - mean) / std)
        batches.append((np.stack(out), labels[index]))
    return batches


def _collect(batches) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.cpu().numpy(), y.cpu().numpy()) for x, y in batches]


def _assert_same(got: list[tuple], want: list[tuple]) -> None:
    assert len(got) == len(want)
    for (x, y), (rx, ry) in zip(got, want, strict=True):
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_allclose(x, rx, rtol=0, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(DATASETS))
def test_host_and_resident_batches_equal_the_reference_augmentation(name: str, device: str) -> None:
    data = DATASETS[name]()
    want = _reference(data, data.train, 32, seed=7)
    seeded = torch.Generator().manual_seed(7)
    host = data.batches(data.train, 32, generator=seeded, augment=True, device=device)
    resident = data.to(device)
    assert resident.train.images.device.type == device and resident.train.images.dtype == torch.uint8
    on_device = resident.batches(
        resident.train, 32, generator=torch.Generator().manual_seed(7), augment=True, device=device
    )
    _assert_same(_collect(host), want)
    _assert_same(_collect(on_device), want)


@pytest.mark.parametrize("name", list(DATASETS))
def test_batches_draw_as_augment_does_batch_by_batch(name: str) -> None:
    """The epoch plan consumes the generator exactly as the per-batch host loop with ``augment``."""
    data = DATASETS[name]()
    generator = torch.Generator().manual_seed(3)
    order = torch.randperm(len(data.train), generator=generator)
    per_batch = []
    for start in range(0, len(order), 16):
        index = order[start : start + 16]
        images = data.augment(data.train.images[index], generator)
        per_batch.append((data.normalize(images), data.train.labels[index]))
    after = generator.get_state()
    plan_generator = torch.Generator().manual_seed(3)
    planned = list(data.batches(data.train, 16, generator=plan_generator, augment=True))
    assert torch.equal(plan_generator.get_state(), after)  # a checkpoint's generator state is the same
    for (x, y), (px, py) in zip(per_batch, planned, strict=True):
        assert torch.equal(x, px) and torch.equal(y, py)


def test_the_augmentation_is_a_function_of_the_seed() -> None:
    data = DATASETS["cifar-like 32px, pad 4, flip"]()

    def epoch(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.cat([x for x, _ in data.batches(data.train, 32, generator=generator, augment=True)])

    assert torch.equal(epoch(5), epoch(5))
    assert not torch.equal(epoch(5), epoch(6))
    unaugmented = torch.cat([x for x, _ in data.batches(data.train, 32)])
    assert torch.equal(unaugmented, data.normalize(data.train.images))  # in order, untouched


def test_augment_true_without_a_generator_is_refused() -> None:
    data = DATASETS["cifar-like 32px, pad 4, flip"]()
    with pytest.raises(ValueError, match="augment=True needs a generator"):
        next(data.batches(data.train, 8, augment=True))


@pytest.fixture
def restore_determinism() -> Iterator[None]:
    """``deterministic: true`` is process-wide: put PyTorch's flags back after the test."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.deterministic = before[1]


@pytest.mark.parametrize("device", DEVICES)
def test_the_evaluator_keeps_its_dataset_resident_on_its_device(
    device: str, restore_determinism: None
) -> None:
    # deterministic: on a GPU the same seed otherwise differs in the last digits (seen on an H200:
    # valid_loss 2.3078537368774414 vs 2.307853660583496); on CPU it is bit-equal either way
    fields = {"C": 4, "N": 1, "digits_size": 8, "batch_size": 64, "threads": 1, "train_subset": 128}
    config = TrainingConfig(**fields, device=device, deterministic=True)
    evaluator = TrainingEvaluator(config)
    evaluator.setup()
    for split in (evaluator.data.train, evaluator.data.valid, evaluator.data.test):
        assert split.images.device.type == device and split.images.dtype == torch.uint8
    (first,) = evaluator.evaluate([Candidate(0, CONV, seed=4)])
    (again,) = TrainingEvaluator(config).evaluate([Candidate(1, CONV, seed=4)])
    same = ("valid_accuracy", "valid_loss", "train_accuracy", "train_loss")
    assert first.ok and {k: first.metrics[k] for k in same} == {k: again.metrics[k] for k in same}


def test_digits_are_sklearns_and_reading_them_does_not_import_sklearn() -> None:
    from sklearn.datasets import load_digits

    from natsray.datasets.builtin import _digits_arrays

    images, labels = _digits_arrays()
    digits = load_digits()
    assert np.array_equal(images, digits.images) and np.array_equal(labels, digits.target)
    code = "import sys; "
    code += "from natsray.datasets import load_dataset as f; f('digits'); print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-1000:]  # seconds of driver start-up saved


def test_the_documented_gpu_sharing_resources_fit_two_gpus_and_not_one() -> None:
    root = Path(__file__).resolve().parents[1]
    section = (root / "docs" / "training.md").read_text().split("## Sharing a GPU", 1)[1]
    (block,) = re.findall(r"```yaml\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    resources = yaml.safe_load(block)["resources"]
    config = load_config(root / "launch" / "smoke.yaml", [f"resources.{k}={v}" for k, v in resources.items()])
    assert config.resources.gpus_per_actor == 0.25
    assert check_resources(config, [{"CPU": 8, "GPU": 1}, {"CPU": 8, "GPU": 1}]) is None  # 4 per GPU
    assert "has room for 4" in check_resources(config, [{"CPU": 16, "GPU": 1}])


def test_actors_sharing_a_gpu_without_mps_get_a_one_line_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured on an H200: without MPS, 8 actors on one GPU gave 1.2x one training, with it 2.2x."""
    from natsray.engine.cluster import gpu_sharing_note

    root = Path(__file__).resolve().parents[1]
    pipes = tmp_path / "mps"
    pipes.mkdir()
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(pipes))

    def note(share: float, *sets: str) -> str | None:
        config = load_config(
            root / "configs" / "train-cifar10-gpu.yaml", [f"resources.gpus_per_actor={share}", *sets]
        )
        return gpu_sharing_note(config)

    assert note(0.25) == (
        "natsray: note: resources.gpus_per_actor 0.25 shares each GPU among 4 trainings, but NVIDIA MPS is "
        "not running here, so the GPU runs them one at a time: start it with 'nvidia-cuda-mps-control -d' "
        'first (docs/training.md, "Sharing a GPU")'
    )
    assert "among 3 trainings" in (note(1 / 3) or "")
    cpu_only = ("evaluator.device=auto", "evaluator.cuda_graphs=false")  # GPU settings need GPU actors
    assert note(1) is None and note(2) is None and note(0, *cpu_only) is None  # a GPU (or more) each, or none
    (pipes / "control").touch()  # the MPS control daemon's pipe: it runs
    assert note(0.25) is None
