"""natsray.datasets: the real loaders on tiny files written in the exact on-disk formats."""

from __future__ import annotations

import ast
import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from natsray.datasets import load_dataset
from natsray.evaluators.base import EvaluatorError


def _dump(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(entry, handle)


def _rows(split) -> set[bytes]:
    return {image.numpy().tobytes() for image in split.images}


def write_cifar10(
    root: Path, per_batch: int = 8, test: int = 6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 python-pickle layout; returns all training images (n, 3072) and labels."""
    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    images, labels = [], []
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        target = [int(x) for x in rng.integers(0, 10, size=per_batch)]
        _dump(directory / f"data_batch_{i}", {"batch_label": f"batch {i}", "data": data, "labels": target})
        images.append(data)
        labels += target
    test_data = rng.integers(0, 256, size=(test, 3072), dtype=np.uint8)
    _dump(
        directory / "test_batch", {"data": test_data, "labels": [int(x) for x in rng.integers(0, 10, test)]}
    )
    return np.concatenate(images), np.array(labels)


def write_cifar100(root: Path, train: int = 12, test: int = 10) -> np.ndarray:
    rng = np.random.default_rng(1)
    directory = root / "cifar-100-python"
    _dump(
        directory / "train",
        {"data": rng.integers(0, 256, (train, 3072), dtype=np.uint8), "fine_labels": list(range(train))},
    )
    test_data = rng.integers(0, 256, (test, 3072), dtype=np.uint8)
    _dump(directory / "test", {"data": test_data, "fine_labels": [90 + i for i in range(test)]})
    return test_data


def write_imagenet16(root: Path) -> tuple[list[int], list[int]]:
    """ImageNet16 layout with 1-based labels, some beyond class 120; returns train and val labels."""
    rng = np.random.default_rng(2)
    directory = root / "ImageNet16"
    train_labels: list[int] = []
    for i in range(1, 11):
        labels = [int(x) for x in rng.integers(1, 1001, size=5)] + [1, 120]
        _dump(
            directory / f"train_data_batch_{i}",
            {"data": rng.integers(0, 256, (7, 768), np.uint8), "labels": labels},
        )
        train_labels += labels
    val_labels = [1, 2, 121, 120, 500, 7, 3, 999, 60, 61]
    _dump(directory / "val_data", {"data": rng.integers(0, 256, (10, 768), np.uint8), "labels": val_labels})
    return train_labels, val_labels


def test_digits_split_sizes_shapes_and_determinism() -> None:
    from sklearn.datasets import load_digits

    data = load_dataset("digits", digits_size=16)
    assert (len(data.train), len(data.valid), len(data.test)) == (1000, 400, 397)
    assert data.train.images.shape == (1000, 3, 16, 16) and data.train.images.dtype == torch.uint8
    assert data.num_classes == 10 and data.input_size == 16 and not data.flip
    counts = Counter(torch.cat([data.train.labels, data.valid.labels, data.test.labels]).tolist())
    assert counts == Counter(load_digits().target.tolist())  # a partition of all 1,797 images
    again = load_dataset("digits", digits_size=16)
    assert torch.equal(again.valid.images, data.valid.images)
    assert load_dataset("digits").train.images.shape == (1000, 3, 32, 32)
    with pytest.raises(EvaluatorError, match="digits_size"):
        load_dataset("digits", digits_size=20)


def test_batches_normalise_in_order_and_shuffle_reproducibly() -> None:
    data = load_dataset("digits", digits_size=16)
    images, labels = next(data.batches(data.valid, 50))
    mean, std = data.mean[0], data.std[0]
    assert torch.allclose(images, (data.valid.images[:50].float() / 255 - mean) / std)
    assert torch.equal(labels, data.valid.labels[:50])
    train = torch.cat([x for x, _ in data.batches(data.train, 128)])
    assert abs(float(train.mean())) < 1e-3 and abs(float(train.std()) - 1) < 1e-2
    first = [y for _, y in data.batches(data.train, 64, generator=torch.Generator().manual_seed(3))]
    second = [y for _, y in data.batches(data.train, 64, generator=torch.Generator().manual_seed(3))]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert sorted(torch.cat(first).tolist()) == sorted(data.train.labels.tolist())


def test_augment_is_a_padded_crop_and_flip(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    data = load_dataset("cifar10", tmp_path)
    images = data.train.images[:6]
    out = data.augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for original, crop in zip(padded, out, strict=True):
        windows = [
            view[:, dy : dy + 32, dx : dx + 32]
            for view in (original, original.flip(2))
            for dy in range(9)
            for dx in range(9)
        ]
        assert any(torch.equal(crop, window) for window in windows)
    again = data.augment(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_reads_pickles_and_halves_the_train_set(tmp_path: Path, nested: bool) -> None:
    train_data, train_labels = write_cifar10(tmp_path)
    data = load_dataset("cifar10", tmp_path if nested else tmp_path / "cifar-10-batches-py")
    assert (len(data.train), len(data.valid), len(data.test)) == (20, 20, 6)
    assert data.input_size == 32 and data.num_classes == 10 and data.crop_padding == 4 and data.flip
    assert data.mean == pytest.approx((125.3 / 255, 123.0 / 255, 113.9 / 255))
    expected = {row.reshape(3, 32, 32).tobytes() for row in train_data}
    assert _rows(data.train) | _rows(data.valid) == expected
    assert not _rows(data.train) & _rows(data.valid)
    first = train_data[0].reshape(3, 32, 32)
    for split in (data.train, data.valid):
        for image, label in zip(split.images, split.labels, strict=True):
            if np.array_equal(image.numpy(), first):
                assert int(label) == train_labels[0]
    assert "seeded" in data.split_source


def test_cifar10_uses_the_nats_split_file_when_present(tmp_path: Path) -> None:
    train_data, _ = write_cifar10(tmp_path)
    directory = tmp_path / "cifar-10-batches-py"
    split = {
        "train": ["int", [str(i) for i in range(0, 40, 2)]],
        "valid": ["int", [str(i) for i in range(1, 40, 2)]],
    }
    (directory / "cifar-split.txt").write_text(json.dumps(split))
    data = load_dataset("cifar10", tmp_path)
    assert np.array_equal(data.train.images.numpy(), train_data[0::2].reshape(-1, 3, 32, 32))
    assert np.array_equal(data.valid.images.numpy(), train_data[1::2].reshape(-1, 3, 32, 32))
    assert data.split_source.startswith("NATS split file")
    (directory / "cifar-split.txt").write_text(
        json.dumps({"train": ["int", ["0", "0"]], "valid": ["int", []]})
    )
    with pytest.raises(EvaluatorError, match="disjoint"):
        load_dataset("cifar10", tmp_path)


def test_cifar100_valid_and_test_are_halves_of_the_test_set(tmp_path: Path) -> None:
    test_data = write_cifar100(tmp_path)
    data = load_dataset("cifar100", tmp_path)
    assert (len(data.train), len(data.valid), len(data.test)) == (12, 5, 5)
    assert data.num_classes == 100
    assert _rows(data.valid) | _rows(data.test) == {row.reshape(3, 32, 32).tobytes() for row in test_data}
    assert sorted(torch.cat([data.valid.labels, data.test.labels]).tolist()) == list(range(90, 100))


def test_imagenet16_keeps_the_first_120_classes_zero_based(tmp_path: Path) -> None:
    train_labels, val_labels = write_imagenet16(tmp_path)
    data = load_dataset("ImageNet16-120", tmp_path)
    assert data.input_size == 16 and data.num_classes == 120 and data.crop_padding == 2
    assert data.train.images.shape[1:] == (3, 16, 16)
    assert sorted(data.train.labels.tolist()) == sorted(x - 1 for x in train_labels if x <= 120)
    kept_val = sorted(x - 1 for x in val_labels if x <= 120)
    assert sorted(torch.cat([data.valid.labels, data.test.labels]).tolist()) == kept_val
    assert len(data.valid) == len(kept_val) // 2


def _one_line_error(name: str, path: Path | None, match: str) -> None:
    with pytest.raises(EvaluatorError, match=match) as info:
        load_dataset(name, path)
    assert "\n" not in str(info.value)


def test_missing_and_malformed_dirs_give_one_line_errors(tmp_path: Path) -> None:
    _one_line_error("cifar10", tmp_path, r"has no cifar-10-batches-py/data_batch_1 .*cs\.toronto\.edu")
    _one_line_error("cifar100", tmp_path, "has no cifar-100-python/train")
    _one_line_error("ImageNet16-120", tmp_path, "has no ImageNet16/train_data_batch_1")
    _one_line_error("cifar10", tmp_path / "nope", "is not a directory")
    _one_line_error("cifar10", None, "needs data_dir")
    _one_line_error("mnist", tmp_path, "'mnist' is not one of digits, cifar10")

    write_cifar10(tmp_path)
    directory = tmp_path / "cifar-10-batches-py"
    (directory / "data_batch_3").write_bytes(b"not a pickle")
    _one_line_error("cifar10", tmp_path, "data_batch_3 is not a readable pickle")
    _dump(directory / "data_batch_3", {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})
    _one_line_error("cifar10", tmp_path, r"data_batch_3 'data' must be uint8 of shape \(n, 3072\)")
    _dump(directory / "data_batch_3", {"data": np.zeros((2, 3072), np.uint8)})
    _one_line_error("cifar10", tmp_path, "data_batch_3 must be a pickled dict with keys data, labels")
    (directory / "data_batch_3").unlink()
    _one_line_error("cifar10", tmp_path, "missing file .*data_batch_3")


def _package_imports(tree: ast.Module) -> list[str]:
    """The ``natsray.datasets`` modules a module imports, anywhere in it (``""``: the package itself)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("natsray.datasets")]
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative: from . import x, from .x import y
            found += [node.module] if node.module else [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("natsray.datasets"):
            found.append(node.module or "")
    return [name.removeprefix("natsray.datasets").lstrip(".") for name in found]


def test_the_package_keeps_its_public_names_and_imports_only_downwards() -> None:
    """``from natsray.datasets import ...`` serves every public name; no module imports a higher one."""
    import natsray.datasets as package

    public = ["DATASETS", "SPLIT_SEED", "USER_DATASETS", "DatasetInfo", "ImageDataset", "ImageSplit"]
    public += ["check_dataset", "check_image_size", "is_dataset_plugin", "load_dataset"]
    assert sorted(package.__all__) == sorted(public)
    from natsray.registry import DATASET_TARGETS  # the names natsray components lists, without torch

    assert tuple(DATASET_TARGETS) == package.DATASETS + package.USER_DATASETS
    assert all(hasattr(package, name) for name in public)
    # its modules, lowest first
    floors = ["image_dataset", "pixels", "builtin", "user_data", "arrays", "folder", "plugin", "loading"]
    folder = Path(package.__file__).parent
    assert sorted(path.stem for path in folder.glob("*.py")) == sorted([*floors, "__init__"])
    for module in floors:
        for imported in _package_imports(ast.parse((folder / f"{module}.py").read_text())):
            assert imported in floors[: floors.index(module)], f"{module} imports natsray.datasets.{imported}"


def test_the_package_needs_nothing_of_natsray_but_its_error() -> None:
    """The dataset readers sit below the evaluators that use them: they import only ``natsray.errors``
    and ``natsray.registry`` (a dataset plugin's name; the evaluators and datasets folders used to
    import each other)."""
    import natsray.datasets as package

    outside = set()
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            outside |= {n for n in names if n.startswith("natsray") and not n.startswith("natsray.datasets")}
    assert outside == {"natsray.errors", "natsray.registry"}
