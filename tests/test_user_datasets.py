"""The user's own data for training: ``dataset: arrays`` (.npz) and ``dataset: folder`` (image folders).

Malformed data is refused in one line naming the file, before Ray starts where a cheap check can
tell (``natsray validate`` / ``run`` exit 2), otherwise when the driver reads the data. Two tiny
training searches (an .npz and an image-folder tree, both written here) run on one local Ray
cluster and their best weights load back into the network with the recorded accuracy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
import yaml
from PIL import Image
from toy_evaluator import local_ray_session, make_config

from natsray.cli import main
from natsray.config import BudgetConfig, check_paths, load_config
from natsray.config.typed_yaml import ConfigError
from natsray.datasets import SPLIT_SEED, check_dataset, load_dataset
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import run_experiment
from natsray.evaluators.base import EvaluatorError
from natsray.evaluators.costs import CostConfig
from natsray.evaluators.proxies import ProxyConfig, ProxyEvaluator
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator, evaluate_split
from natsray.models import build_model, load_weights
from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.strategies.random_search import RandomSearchConfig

TINY = {"C": 4, "N": 1, "batch_size": 32, "threads": 1, "epochs": 2, "device": "cpu"}
PROXY_TINY = {"C": 4, "N": 1, "batch_size": 16, "threads": 1, "device": "cpu", "report": ("params",)}


def blobs(n: int, classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``uint8`` NHWC RGB images: noise plus a bright square whose corner says the class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    images = rng.integers(0, 96, size=(n, size, size, 3), dtype=np.uint8)
    half = size // 2
    for image, label in zip(images, labels, strict=True):
        row, col = divmod(int(label), 2)
        image[row * half : (row + 1) * half, col * half : (col + 1) * half, label % 3] = 255
    return images, labels


def write_npz(path: Path, **overrides: np.ndarray | None) -> Path:
    """A valid 3-class 8x8 NHWC .npz (120 / 48 / 30 images); ``overrides`` replace (None: drop) arrays."""
    x_train, y_train = blobs(120, 3, 8, seed=0)
    x_valid, y_valid = blobs(48, 3, 8, seed=1)
    x_test, y_test = blobs(30, 3, 8, seed=2)
    arrays = {
        "x_train": x_train,
        "y_train": y_train,
        "x_valid": x_valid,
        "y_valid": y_valid,
        "x_test": x_test,
        "y_test": y_test,
    }
    arrays.update(overrides)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def write_folder(root: Path, per_class: dict[str, int] | None = None, size: int = 8) -> Path:
    """An image-folder tree of 3 classes (PNG): 40 train and 12 valid images per class.

    Some images are grayscale, some RGBA, some larger than ``size`` (all resized by image_size).
    """
    per_class = per_class or {"train": 40, "valid": 12}
    for seed, (split, count) in enumerate(per_class.items()):
        images, labels = blobs(3 * count, 3, size, seed=10 + seed)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            directory = root / split / ("cat", "dog", "owl")[label]
            directory.mkdir(parents=True, exist_ok=True)
            picture = Image.fromarray(image)
            if i % 7 == 1:
                picture = picture.convert("L")
            elif i % 7 == 2:
                picture = picture.convert("RGBA")
            elif i % 7 == 3:
                picture = picture.resize((2 * size, 2 * size), Image.Resampling.NEAREST)
            picture.save(directory / f"{i:04d}.png")
    return root


# --- the data, read ------------------------------------------------------------------------------


def test_arrays_layouts_dtypes_and_statistics_come_from_the_data(tmp_path: Path) -> None:
    x_train, y_train = blobs(120, 3, 8, seed=0)
    reference = load_dataset("arrays", write_npz(tmp_path / "nhwc.npz"))
    assert (reference.num_classes, reference.input_size, len(reference.test)) == (3, 8, 30)
    assert reference.train.images.shape == (120, 3, 8, 8) and reference.train.images.dtype == torch.uint8
    assert torch.equal(reference.train.images, torch.from_numpy(x_train.transpose(0, 3, 1, 2)))
    assert torch.equal(reference.train.labels, torch.from_numpy(y_train))
    pixels = x_train.astype(np.float64) / 255
    assert reference.mean == pytest.approx(tuple(pixels.mean(axis=(0, 1, 2))), abs=1e-12)
    assert reference.std == pytest.approx(tuple(pixels.std(axis=(0, 1, 2))), abs=1e-12)
    assert (reference.crop_padding, reference.flip, reference.classes) == (1, True, ("0", "1", "2"))

    nchw_float = write_npz(
        tmp_path / "nchw.npz",
        x_train=x_train.transpose(0, 3, 1, 2).astype(np.float32) / 255,  # floats in 0..1
        x_valid=blobs(48, 3, 8, seed=1)[0].transpose(0, 3, 1, 2).astype(np.float64),  # floats in 0..255
    )
    same = load_dataset("arrays", nchw_float)
    assert torch.equal(same.train.images, reference.train.images)
    assert torch.equal(same.valid.images, reference.valid.images)

    gray = write_npz(
        tmp_path / "gray.npz",
        x_train=x_train[..., 0],
        x_valid=blobs(48, 3, 8, seed=1)[0][..., 0],
        x_test=None,
        y_test=None,
    )
    gray = load_dataset("arrays", gray, image_size=16)
    assert gray.train.images.shape == (120, 3, 16, 16) and len(gray.test) == 0
    assert torch.equal(gray.train.images[:, 0], gray.train.images[:, 2])  # one channel, replicated
    assert gray.mean[0] == gray.mean[1] == gray.mean[2]


def test_folder_classes_are_sorted_folder_names_and_images_are_resized_rgb(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "pets")
    info = check_dataset("folder", root, image_size=8)
    assert (info.num_classes, info.classes, info.image_size) == (3, ("cat", "dog", "owl"), 8)
    assert info.sizes == {"train": 120, "valid": 36, "test": 0}
    data = load_dataset("folder", root, image_size=8)
    assert data.train.images.shape == (120, 3, 8, 8) and data.valid.images.shape == (36, 3, 8, 8)
    assert torch.bincount(data.train.labels).tolist() == [40, 40, 40]
    modes = set()
    for i, path in enumerate(sorted((root / "train" / "cat").iterdir())):  # label 0: the first 40
        with Image.open(path) as image:
            modes.add((image.mode, image.size))
            rgb = image.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR)
        assert torch.equal(data.train.images[i], torch.from_numpy(np.array(rgb).transpose(2, 0, 1)))
        if image.mode == "L":  # a grayscale file: R = G = B
            assert torch.equal(data.train.images[i, 0], data.train.images[i, 2])
    assert modes == {("RGB", (8, 8)), ("L", (8, 8)), ("RGBA", (8, 8)), ("RGB", (16, 16))}


def test_the_training_evaluator_sizes_its_network_from_the_data(tmp_path: Path) -> None:
    config = TrainingConfig(
        **TINY, dataset="arrays", data_dir=str(write_npz(tmp_path / "d.npz")), report=("params",)
    )
    shared = TrainingEvaluator.prepare_shared(config)
    evaluator = TrainingEvaluator(config, shared)
    evaluator.setup()
    assert (evaluator.data.num_classes, evaluator.data.input_size) == (3, 8)
    assert (evaluator.meter.num_classes, evaluator.meter.input_size) == (3, 8)


# --- malformed data: one line naming the file, at validation time ---------------------------------

_X, _Y = blobs(120, 3, 8, seed=0)

NPZ_FAULTS = {
    "missing key": ({"y_valid": None}, "has no y_valid (expected x_train, y_train, x_valid, y_valid"),
    "x_test without y_test": ({"y_test": None}, "has no y_test"),
    "mismatched lengths": ({"y_train": _Y[:-1]}, "y_train has 119 labels but x_train has 120 images"),
    "valid label out of range": (
        {"y_valid": np.full(48, 3)},
        "y_valid holds label 3, expected 0..2 (the classes of y_train)",
    ),
    "negative label": ({"y_train": np.where(_Y == 0, -1, _Y)}, "y_train holds label -1, expected"),
    "1-based labels": ({"y_train": _Y + 1}, "y_train has no sample of class 0 (labels must be 0..3"),
    "single class": ({"y_train": np.zeros(120, np.int64)}, "y_train holds a single class"),
    "float labels": ({"y_train": _Y.astype(np.float32)}, "y_train has dtype float32, expected integer"),
    "one-hot labels": ({"y_train": np.eye(3, dtype=np.int64)[_Y]}, "(one-hot? store y.argmax(1))"),
    "wrong dims": ({"x_train": _X.reshape(120, -1)}, "x_train has shape (120, 192), expected"),
    "four channels": (
        {"x_train": np.zeros((120, 8, 8, 4), np.uint8)},
        "x_train has shape (120, 8, 8, 4), expected",
    ),
    "splits of other sizes": (
        {"x_valid": np.zeros((48, 16, 16, 3), np.uint8)},
        "x_valid images are 3x16x16 (c x h x w) but x_train's are 3x8x8",
    ),
    "not square": (
        {"x_train": np.zeros((120, 8, 12, 3), np.uint8), "x_valid": np.zeros((48, 8, 12, 3), np.uint8)},
        "x_train: images are 12x8, not square: set image_size",
    ),
    "not a multiple of 4": (
        {"x_train": np.zeros((120, 10, 10), np.uint8), "x_valid": np.zeros((48, 10, 10), np.uint8)},
        "x_train: images are 10x10; the NATS network needs a multiple of 4: set image_size",
    ),
    "string images": ({"x_train": np.full((120, 8, 8), "a")}, "x_train has dtype <U1, expected uint8"),
    "empty valid split": (
        {"x_valid": np.zeros((0, 8, 8, 3), np.uint8), "y_valid": np.zeros(0, np.int64)},
        "x_valid holds no images",
    ),
}


@pytest.mark.parametrize("case", NPZ_FAULTS)
def test_a_malformed_npz_is_one_line_naming_the_file(tmp_path: Path, case: str) -> None:
    overrides, expected = NPZ_FAULTS[case]
    if "x_train" in overrides and "x_valid" in overrides:  # a test split of the default shape would differ
        overrides = {"x_test": None, "y_test": None, **overrides}
    path = write_npz(tmp_path / "data.npz", **overrides)
    with pytest.raises(EvaluatorError) as error:
        check_dataset("arrays", path)
    message = str(error.value)
    assert message.startswith(f"arrays: {path.resolve()}") and expected in message and "\n" not in message
    with pytest.raises(EvaluatorError, match="^arrays: .*" + re.escape(expected)):
        load_dataset("arrays", path)  # the same checks when the driver reads it


@pytest.mark.parametrize(
    ("x_train", "expected"),
    [
        (np.full((120, 8, 8), np.nan, np.float32), "x_train holds NaN or inf values"),
        (np.full((120, 8, 8), -0.5, np.float32), "x_train values span -0.5..-0.5, expected 0..1 or 0..255"),
        (np.full((120, 8, 8), 300, np.int32), "x_train values span 300..300, expected 0..255"),
    ],
)
def test_pixel_values_out_of_range_fail_when_the_data_is_read(
    tmp_path: Path, x_train: np.ndarray, expected: str
) -> None:
    path = write_npz(
        tmp_path / "data.npz",
        x_train=x_train,
        x_valid=np.zeros((48, 8, 8), np.uint8),
        x_test=None,
        y_test=None,
    )
    check_dataset("arrays", path)  # the headers are fine: values are only read with the images
    with pytest.raises(EvaluatorError, match=f"^arrays: {path}: {expected}"):
        load_dataset("arrays", path)


def test_an_npz_that_is_not_one_or_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    with pytest.raises(EvaluatorError, match=r"^arrays: .*broken\.npz is not a readable \.npz file"):
        check_dataset("arrays", tmp_path / "broken.npz")
    with pytest.raises(EvaluatorError, match=r"is a directory; expected an \.npz file"):
        check_dataset("arrays", tmp_path)


def _break_folder(root: Path, case: str) -> tuple[Path, str]:
    """Damage a valid tree; returns the path the message must name and the text it must hold."""
    if case == "no valid split":
        for path in sorted((root / "valid").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (root / "valid").rmdir()
        return root, "has no valid/ (expected train/, valid/ and optional test/"
    if case == "empty class folder":
        for path in (root / "valid" / "dog").iterdir():
            path.unlink()
        (root / "valid" / "dog" / "notes.txt").write_text("not an image")
        return root / "valid" / "dog", "holds no images (expected at least one image file"
    if case == "class missing from a split":
        for path in (root / "valid" / "owl").iterdir():
            path.unlink()
        (root / "valid" / "owl").rmdir()
        return root / "valid", "lacks class folder 'owl', which train/ has (every split needs the same"
    if case == "extra class in a split":
        (root / "test" / "cow").mkdir(parents=True)
        return root / "test", "has class folder 'cow', which train/ lacks"
    if case == "one class":
        for name in ("dog", "owl"):
            for split in ("train", "valid"):
                for path in (root / split / name).iterdir():
                    path.unlink()
                (root / split / name).rmdir()
        return root / "train", "has 1 class folder(s), expected one per class (at least 2)"
    if case == "unreadable image":
        bad = root / "train" / "dog" / "0500.jpg"
        bad.write_bytes(b"\x00garbage, not a JPEG")
        return bad, "not a readable image (UnidentifiedImageError"
    if case == "16-bit image":
        deep = root / "train" / "owl" / "deep.png"
        Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(deep)
        return deep, "a I;16 (16/32-bit) image; expected 8-bit images"
    if case == "sizes differ":
        Image.new("RGB", (12, 16)).save(root / "valid" / "cat" / "big.png")
        return root / "valid" / "cat" / "big.png", "is 12x16): set image_size to resize every image"
    raise AssertionError(case)


FOLDER_FAULTS = (
    "no valid split",
    "empty class folder",
    "class missing from a split",
    "extra class in a split",
    "one class",
    "unreadable image",
    "16-bit image",
    "sizes differ",
)


@pytest.fixture(scope="module")
def folder_template(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("template") / "pets", {"train": 4, "valid": 2})


@pytest.mark.parametrize("case", FOLDER_FAULTS)
def test_a_malformed_image_folder_is_one_line_naming_the_path(
    tmp_path: Path, folder_template: Path, case: str
) -> None:
    import shutil

    root = Path(shutil.copytree(folder_template, tmp_path / "pets")).resolve()
    if case == "sizes differ":  # the template has 16x16 images among the 8x8 ones: make it uniform
        for path in root.rglob("*.png"):
            Image.open(path).convert("RGB").resize((8, 8)).save(path)
    where, expected = _break_folder(root, case)
    with pytest.raises(EvaluatorError) as error:
        check_dataset("folder", root)
    message = str(error.value)
    assert message.startswith(f"folder: {where}" if case != "sizes differ" else "folder: images differ")
    assert str(where) in message and expected in message and "\n" not in message


def test_a_corrupt_image_body_fails_when_the_driver_reads_it_naming_the_file(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "pets", {"train": 4, "valid": 2}).resolve()
    victim = root / "valid" / "owl" / sorted(p.name for p in (root / "valid" / "owl").iterdir())[0]
    big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(big).save(victim)
    victim.write_bytes(victim.read_bytes()[:200])  # header intact, pixel data cut short
    check_dataset("folder", root, image_size=8)  # headers only: not caught here
    with pytest.raises(EvaluatorError, match=f"^folder: {victim}: not a readable image \\(OSError: "):
        load_dataset("folder", root, image_size=8)


# --- config and command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (
            {"dataset": "digits", "image_size": 16},
            "image_size: only for dataset arrays, folder or a dataset plugin, not 'digits'",
        ),
        ({"dataset": "arrays", "image_size": 10}, "image_size: must be a multiple of 4"),
        ({"dataset": "folder", "flip": "yes"}, "flip: must be true, false or null"),
    ],
)
def test_config_rejects_bad_dataset_fields(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**fields)


def test_user_datasets_are_for_training_and_proxies_not_for_the_cost_evaluator() -> None:
    with pytest.raises(
        ValueError,
        match=r"dataset: 'arrays' is not one of .* \(arrays, folder and dataset plugins: type train",
    ):
        CostConfig(dataset="arrays")
    with pytest.raises(
        ValueError, match="image_size: only for dataset arrays, folder or a dataset plugin, not 'cifar10'"
    ):
        ProxyConfig(dataset="cifar10", image_size=16)


def test_proxies_on_the_users_data_size_the_network_from_it(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "data.npz")
    config = ProxyConfig(
        dataset="arrays", data_dir=str(path), image_size=16, proxies=("synflow", "naswot"), **PROXY_TINY
    )
    evaluator = ProxyEvaluator(config)
    (result,) = evaluator.evaluate([Candidate(0, Arch.from_code(1234), seed=1)])
    assert result.ok, result.error
    assert (evaluator.num_classes, evaluator.batch[0].shape) == (3, (16, 3, 16, 16))
    data = load_dataset("arrays", path, image_size=16)
    first = next(data.batches(data.train, 16, generator=torch.Generator().manual_seed(SPLIT_SEED)))
    assert torch.equal(evaluator.batch[0], first[0])  # the minibatch comes from the user's training split
    synflow_only = ProxyEvaluator(
        ProxyConfig(dataset="arrays", data_dir=str(path), proxies=("synflow",), **PROXY_TINY)
    )
    synflow_only.setup()
    assert (synflow_only.num_classes, synflow_only.batch[0].shape) == (
        3,
        (16, 3, 8, 8),
    )  # classes, size: the data's
    bad = write_npz(tmp_path / "bad.npz", y_train=_Y[:-1])
    with pytest.raises(EvaluatorError, match="y_train has 119 labels but x_train has 120 images"):
        ProxyConfig(dataset="arrays", data_dir=str(bad), **PROXY_TINY).check_data()  # what validate calls


def _yaml(tmp_path: Path, data: Path, **evaluator: object) -> Path:
    config = {
        "strategy": {"name": "random"},
        "evaluator": {"type": "train", "dataset": "arrays", "data_dir": str(data), **TINY, **evaluator},
        "budget": {"evaluations": 2},
        "resources": {"actors": 1, "cpus_per_actor": 1, "num_cpus": 2},
        "output": {"dir": str(tmp_path / "run"), "progress": False},
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_validate_and_run_refuse_malformed_data_before_ray_starts(tmp_path: Path, capsys) -> None:
    data = write_npz(tmp_path / "data.npz", y_valid=np.full(48, 7))
    config = _yaml(tmp_path, data)
    for command in ("validate", "run"):
        assert main([command, str(config)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"natsray: error: {config}: evaluator.data_dir: arrays: {data}: y_valid holds label 7, "
            "expected 0..2 (the classes of y_train)"
        )
    assert not ray.is_initialized() and not (tmp_path / "run").exists()


def test_a_test_metric_without_a_test_split_is_refused_at_validation(tmp_path: Path) -> None:
    data = write_npz(tmp_path / "data.npz", x_test=None, y_test=None)
    config = load_config(_yaml(tmp_path, data, report=["test_accuracy"]))
    with pytest.raises(
        ConfigError, match=r"report: test_accuracy needs a test split, and .*data\.npz has none"
    ):
        check_paths(config)
    check_paths(load_config(_yaml(tmp_path, data)))  # without test metrics it is fine


# --- training searches on Ray: the best weights load back --------------------------------------------


@pytest.fixture(scope="module")
def address():
    with local_ray_session() as gcs_address:
        yield gcs_address


def _search(run_dir: Path, evaluator: TrainingConfig, evaluations: int, actors: int) -> list[dict]:
    config = make_config(
        strategy=RandomSearchConfig(),
        evaluator=evaluator,
        budget=BudgetConfig(evaluations=evaluations),
        actors=actors,
    )
    run_experiment(config, run_dir)
    records = read_journal(run_dir / "evaluations.jsonl")
    assert [r["status"] for r in records] == ["ok"] * evaluations, [r.get("error") for r in records]
    return records


def _best_reloaded(run_dir: Path, records: list[dict], data, config: TrainingConfig) -> None:
    """The best weights load into a fresh network that scores the recorded accuracy on ``valid``."""
    index = json.loads((run_dir / "weights" / "top_k.json").read_text())
    best = index["top"][0]
    recorded = next(r for r in records if r["candidate_id"] == best["candidate_id"])
    assert recorded["metrics"]["valid_accuracy"] == max(r["metrics"]["valid_accuracy"] for r in records)
    model = build_model(Arch.from_str(best["arch"]), C=index["C"], N=index["N"], num_classes=data.num_classes)
    load_weights(model, run_dir / "weights" / best["file"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the actor (threads: 1): the same float sums
    try:
        accuracy, loss = evaluate_split(model, data, data.valid, config.batch_size, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert accuracy == recorded["metrics"]["valid_accuracy"]
    assert loss == pytest.approx(recorded["metrics"]["valid_loss"], rel=1e-6)
    assert not list((run_dir / "training_state").glob("*.pt"))  # every checkpointed state was finished


@pytest.mark.ray
def test_a_training_search_on_an_npz_keeps_weights_that_load_back(tmp_path: Path, address) -> None:
    path = write_npz(tmp_path / "data.npz")
    config = TrainingConfig(
        **TINY,
        dataset="arrays",
        data_dir=str(path),
        save_top_k=2,
        checkpoint_epochs=1,
        report=("test_accuracy",),
    )
    records = _search(tmp_path / "run", config, evaluations=5, actors=2)  # both map one shared copy
    assert all(0 <= r["metrics"]["test_accuracy"] <= 100 for r in records)
    assert max(r["metrics"]["valid_accuracy"] for r in records) > 100 / 3  # above chance: it learned
    assert len(list((tmp_path / "run" / "weights").glob("*.pt"))) == 2
    _best_reloaded(tmp_path / "run", records, load_dataset("arrays", path), config)


@pytest.mark.ray
def test_a_training_search_on_an_image_folder_keeps_weights_that_load_back(tmp_path: Path, address) -> None:
    root = write_folder(tmp_path / "pets")
    config = TrainingConfig(
        **TINY,
        dataset="folder",
        data_dir=str(root),
        image_size=8,
        flip=False,
        save_top_k=1,
        checkpoint_epochs=1,
    )
    records = _search(tmp_path / "run", config, evaluations=4, actors=1)
    _best_reloaded(tmp_path / "run", records, load_dataset("folder", root, image_size=8), config)
