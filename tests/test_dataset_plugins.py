"""Dataset plugins: ``evaluator.dataset: "package.module:function"`` (YAML, ``--set``), the function
object from Python, a short name of the entry-point group ``natsray.datasets``.

What a plugin returns becomes the same dataset as the ``.npz`` of the same arrays; malformed data is
refused in one line naming the plugin; a training search on a plugin's data calls it once, in the
driver, and keeps top-k weights that load back. The docs' examples run here too: training.md's plugin
section, and extending.md's ``scoring.py`` with a strategy that gives no budget.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
import yaml
from test_docs_extending import REPO, run_section, sections
from toy_evaluator import local_ray_session
from user_package import user_package

import natsray
from natsray.cli import main
from natsray.config import ConfigError, check_paths, load_config
from natsray.datasets import load_dataset
from natsray.datasets.plugin import REGISTRY
from natsray.evaluators.base import EvaluatorError
from natsray.evaluators.costs import CostConfig
from natsray.evaluators.proxies import ProxyConfig, ProxyEvaluator
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator, evaluate_split
from natsray.models import build_model, load_weights
from natsray.records import Candidate
from natsray.search_space import Arch

DATA = '''
import numpy as np
import torch

CALLS = []


def blobs(n, seed):
    """uint8 NHWC images of 3 classes: a bright square whose corner says the class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 96, size=(n, 8, 8, 3), dtype=np.uint8)
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 2)
        image[row * 4 : row * 4 + 4, col * 4 : col * 4 + 4, label] = 255
    return images, labels


def arrays(n=96, test=True):
    (x, y), (xv, yv), (xt, yt) = blobs(n, 0), blobs(n // 2, 1), blobs(30, 2)
    out = {"x_train": x, "y_train": y, "x_valid": xv, "y_valid": yv}
    if test:
        out.update(x_test=xt, y_test=yt)
    return out


def as_dict(n=96, log=None, **changes):
    if log:
        with open(log, "a") as handle:
            handle.write("called\\n")
    out = arrays(n)
    out.update({key: (None if value == "drop" else value) for key, value in changes.items()})
    return {key: value for key, value in out.items() if value is not None}


def as_tensors(n=96):
    """A tuple of torch tensors: NCHW float images in 0..1, int64 labels (no test split)."""
    a = arrays(n, test=False)
    to = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    return to(a["x_train"]), torch.from_numpy(a["y_train"]), to(a["x_valid"]), torch.from_numpy(a["y_valid"])


class AsObject:
    """A class as the plugin: its instance carries the arrays as attributes."""

    def __init__(self, n=96):
        for key, value in arrays(n).items():
            setattr(self, key, value)
        self.classes = ("red", "green", "blue")


def broken():
    return {"x_train": None}["x_train"].shape  # raises on this line


def bad(case):
    a = arrays()
    if case == "nan":
        a["x_train"] = a["x_train"].astype(np.float32)
        a["x_train"][0, 0, 0, 0] = np.nan
    elif case == "float labels":
        a["y_train"] = a["y_train"].astype(np.float32)
    elif case == "lengths":
        a["y_train"] = a["y_train"][:-1]
    elif case == "shape":
        a["x_train"] = a["x_train"].reshape(len(a["x_train"]), -1)
    elif case == "typo":
        a["x_trian"] = a.pop("x_train")
    elif case == "missing":
        del a["y_valid"]
    elif case == "tuple":
        return (a["x_train"], a["y_train"])
    elif case == "classes":
        a["classes"] = ["a", "b"]
    elif case == "std":
        a["std"] = [0.2, 0.0, 0.2]
    elif case == "nothing":
        return 42
    return a


NOT_CALLABLE = 3
'''


@pytest.fixture
def plugin(tmp_path: Path):
    """The user's package ``dsplug`` (module ``dsplug.data``) on ``sys.path``."""
    with user_package(tmp_path, "dsplug", {"data": DATA}) as root:
        yield root


def _same(a, b) -> None:
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(a, split).images, getattr(b, split).images), split
        assert torch.equal(getattr(a, split).labels, getattr(b, split).labels), split
    assert (a.num_classes, a.input_size, a.crop_padding, a.flip) == (b.num_classes, b.input_size, 1, True)
    assert a.mean == pytest.approx(b.mean, abs=1e-12) and a.std == pytest.approx(b.std, abs=1e-12)


# --- what a plugin returns becomes the dataset an .npz of the same arrays gives ------------------------


def test_a_plugin_returns_what_an_npz_holds_as_a_mapping_tuple_or_object(
    plugin: Path, tmp_path: Path
) -> None:
    from dsplug.data import arrays

    np.savez(tmp_path / "same.npz", **arrays())
    reference = load_dataset("arrays", tmp_path / "same.npz")
    mapping = load_dataset("dsplug.data:as_dict")
    _same(mapping, reference)
    assert mapping.name == "dsplug.data:as_dict" and mapping.classes == ("0", "1", "2")
    assert "dsplug.data:as_dict" in mapping.split_source

    obj = load_dataset("dsplug.data:AsObject")  # a class: its instance's attributes
    _same(obj, reference)
    assert obj.classes == ("red", "green", "blue")

    tensors = load_dataset("dsplug.data:as_tensors")  # torch NCHW floats in 0..1, no test split
    assert len(tensors.test) == 0 and tensors.train.images.dtype == torch.uint8
    assert torch.equal(tensors.train.images, reference.train.images)  # 0..1 floats scaled back exactly
    assert torch.equal(tensors.valid.labels, reference.valid.labels)

    params = load_dataset(
        "dsplug.data:as_dict", params={"n": 48, "mean": [0.5], "std": [0.25]}, image_size=16
    )
    assert params.train.images.shape == (48, 3, 16, 16)
    assert (params.mean, params.std) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


PLUGIN_FAULTS = {
    "nan": "x_train holds NaN or inf values",
    "float labels": "y_train has dtype float32, expected integer class labels 0..C-1",
    "lengths": "y_train has 95 labels but x_train has 96 images",
    "shape": "x_train has shape (96, 192), expected (n, h, w, c) NHWC",
    "typo": "returned key 'x_trian' (did you mean 'x_train'?)",
    "missing": "returned no y_valid (expected a mapping with x_train, y_train, x_valid, y_valid",
    "tuple": "returned a tuple of 2 items; expected a mapping",
    "classes": "classes has 2 names; expected 3 (one per class of y_train)",
    "std": "std is [0.2, 0.0, 0.2]; expected values > 0",
    "nothing": "returned int; expected a mapping",
}


@pytest.mark.parametrize("case", PLUGIN_FAULTS)
def test_what_a_plugin_returns_is_checked_in_one_line_naming_it(plugin: Path, case: str) -> None:
    with pytest.raises(EvaluatorError) as error:
        load_dataset("dsplug.data:bad", params={"case": case})
    message = str(error.value)
    assert message.startswith("dataset dsplug.data:bad: ") and "\n" not in message
    assert PLUGIN_FAULTS[case] in message, message


def test_a_plugin_that_raises_or_is_not_a_callable_is_one_line(plugin: Path) -> None:
    line = next(i for i, text in enumerate(DATA.splitlines(), 1) if "raises on this line" in text)
    with pytest.raises(EvaluatorError) as error:
        load_dataset("dsplug.data:broken")
    assert str(error.value) == (
        f"dataset dsplug.data:broken raised AttributeError: 'NoneType' object has no attribute 'shape' "
        f"(data.py:{line})"
    )
    with pytest.raises(
        EvaluatorError, match=r"'dsplug\.data:NOT_CALLABLE' is a int, not a function or class"
    ):
        load_dataset("dsplug.data:NOT_CALLABLE")


# --- config, validate, --set ---------------------------------------------------------------------------


def _yaml(tmp_path: Path, **evaluator: object) -> Path:
    config = {
        "strategy": {"name": "regularized_evolution", "population": 2, "sample_size": 2},
        "evaluator": {"type": "train", "dataset": "digits", "C": 4, "N": 1, "device": "cpu", **evaluator},
        "budget": {"evaluations": 2},
        "resources": {"actors": 1, "cpus_per_actor": 1},
        "output": {"dir": str(tmp_path / "run"), "progress": False},
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_validate_takes_a_plugin_from_set_and_refuses_bad_ones_in_one_line(
    plugin: Path, tmp_path: Path, capsys
) -> None:
    config = _yaml(tmp_path)
    assert main(["validate", str(config), "--set", "evaluator.dataset=dsplug.data:as_dict"]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {config}: ")
    cases = {
        "evaluator.dataset=dsplug.data:as_dic": (
            "evaluator.dataset: 'dsplug.data:as_dic': module 'dsplug.data' has no attribute 'as_dic'"
        ),
        "evaluator.dataset=dsplug.dat:as_dict": (
            "evaluator.dataset: 'dsplug.dat:as_dict': no module named 'dsplug.dat' (package 'dsplug' at "
        ),
        "evaluator.dataset_params={case: lengths}": (
            "dataset dsplug.data:bad: y_train has 95 labels but x_train has 96 images"
        ),
        "evaluator.dataset=cifar11": "evaluator.dataset: 'cifar11' is not one of digits, cifar10, cifar100, "
        "ImageNet16-120, arrays, folder (did you mean 'cifar10'?), nor a dataset plugin "
        "'package.module:function' of your own (docs/training.md)",
        "evaluator.data_dir=x.npz": "evaluator.data_dir: not read by the dataset plugin dsplug.data:bad",
    }
    for override, expected in cases.items():
        extra = ["--set", "evaluator.dataset=dsplug.data:bad"] if "dataset=" not in override else []
        assert main(["validate", str(config), *extra, "--set", override]) == 2, override
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"natsray: error: {config}: ") and "\n" not in err, err
        assert expected in err, err
    assert not ray.is_initialized() and not (tmp_path / "run").exists()


def test_a_test_metric_needs_a_test_split_from_the_plugin(plugin: Path, tmp_path: Path) -> None:
    from natsray.engine.preflight import preflight

    config = load_config(_yaml(tmp_path, dataset="dsplug.data:as_tensors", report=["test_accuracy"]))
    check_paths(config)  # importable and callable: what it returns is seen when it is called
    with pytest.raises(
        EvaluatorError, match=r"report: test_accuracy needs a test split, and .*as_tensors has none"
    ):
        preflight(config)


def test_plugin_fields_are_refused_where_they_do_not_apply(plugin: Path) -> None:
    with pytest.raises(ValueError, match=r"dataset_params: only for a dataset plugin .*not 'digits'"):
        TrainingConfig(dataset_params={"n": 3})
    with pytest.raises(
        ValueError, match=r"dataset: 'dsplug.data:as_dict' is not one of .*dataset plugins: type train"
    ):
        CostConfig(dataset="dsplug.data:as_dict")
    from dsplug.data import as_dict

    assert TrainingConfig(dataset=as_dict).dataset == "dsplug.data:as_dict"  # the object, by its path
    with pytest.raises(ValueError, match=r"dataset: .*<locals>.<lambda> is defined in a function"):
        TrainingConfig(dataset=lambda: None)


def test_proxies_call_the_plugin_in_their_setup(plugin: Path) -> None:
    config = ProxyConfig(
        dataset="dsplug.data:as_dict",
        dataset_params={"n": 48},
        proxies=("synflow",),
        C=4,
        N=1,
        batch_size=16,
        threads=1,
        device="cpu",
    )
    evaluator = ProxyEvaluator(config)
    (result,) = evaluator.evaluate([Candidate(0, Arch.from_code(1234), seed=1)])
    assert result.ok, result.error
    assert (evaluator.num_classes, evaluator.batch[0].shape) == (3, (16, 3, 8, 8))


def test_an_entry_point_names_a_plugin_and_components_lists_it(plugin: Path, tmp_path: Path, capsys) -> None:
    import sys

    from test_plugins import dist_info

    site = tmp_path / "site"
    dist_info(
        site,
        "dsplug",
        "0.2",
        "[natsray.datasets]\nblobs = dsplug.data:as_dict\ndigits = dsplug.data:arrays\n",
    )
    sys.path.insert(0, str(site))
    try:
        assert main(["components", "datasets"]) == 0
        lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
        assert "blobs dsplug.data:as_dict dsplug 0.2" in lines
        assert "arrays natsray.datasets.arrays:load_arrays built-in" in lines
        assert any(
            line.startswith("digits dsplug.data:arrays dsplug 0.2 (not used by this name") for line in lines
        )
        assert load_dataset("blobs").num_classes == 3
        assert TrainingConfig(dataset="blobs").dataset_plugin
        assert not TrainingConfig(dataset="digits").dataset_plugin  # the built-in wins
    finally:
        sys.path.remove(str(site))
    assert "blobs" not in REGISTRY.names()


# --- the docs' plugin example (its own Ray, before this module's) ------------------------------------


TRAINING = dict(sections((REPO / "docs" / "training.md").read_text(encoding="utf-8")))


@pytest.mark.ray
def test_docs_training_plugin_section_runs(tmp_path: Path) -> None:
    blocks = TRAINING["Your own data from Python: a dataset plugin"]
    assert [language for language, _ in blocks] == ["python", "yaml", "bash", "python", "bash"]
    run_section("plugin", blocks, tmp_path)
    work = tmp_path / "work"
    for name in ("plugin", "plugin-py"):
        assert json.loads((work / "runs" / name / "summary.json").read_text())["failed"] == 0
        assert list((work / "runs" / name / "weights").glob("*.pt"))  # not in Ray's copy of working_dir


def test_components_lists_datasets_without_importing_torch() -> None:
    import subprocess
    import sys

    code = (
        "import argparse, sys; from natsray.cli.components import cmd_components; "
        "cmd_components(argparse.Namespace(kind=None)); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    assert "datasets (evaluator.dataset):" in lines and lines[-1] == "False", done.stderr[-2000:]
    assert "folder natsray.datasets.folder:load_folder built-in" in lines


# --- a training search on the plugin's data ------------------------------------------------------------


@pytest.fixture(scope="module")
def address():
    with local_ray_session() as gcs_address:
        yield gcs_address


@pytest.mark.ray
def test_natsray_run_takes_the_function_calls_it_once_and_keeps_weights_that_load_back(
    plugin: Path, tmp_path: Path, address
) -> None:
    from dsplug.data import as_dict

    log = tmp_path / "calls.txt"
    config = {
        "seed": 0,
        "strategy": {"name": "regularized_evolution", "population": 2, "sample_size": 2},
        "evaluator": {
            "type": "train",
            "dataset": as_dict,
            "dataset_params": {"log": str(log)},
            "C": 4,
            "N": 1,
            "epochs": 1,
            "batch_size": 32,
            "threads": 1,
            "device": "cpu",
            "save_top_k": 1,
            "checkpoint_epochs": 1,
            "report": ["test_accuracy"],
        },
        "budget": {"evaluations": 3},
        "resources": {"actors": 1, "cpus_per_actor": 1},
    }
    run = natsray.run(config, out=tmp_path / "run", progress=False)
    assert log.read_text() == "called\n"  # once, in the driver: the actor maps the shared copy
    assert run.config["evaluator"]["dataset"] == "dsplug.data:as_dict"
    records = run.evaluations
    assert len(records) == 3 and (records["status"] == "ok").all()
    index = json.loads((tmp_path / "run" / "weights" / "top_k.json").read_text())
    best = index["top"][0]
    assert index["dataset"] == "dsplug.data:as_dict"
    data = load_dataset("dsplug.data:as_dict")
    model = build_model(Arch.from_str(best["arch"]), C=4, N=1, num_classes=3)
    load_weights(model, tmp_path / "run" / "weights" / best["file"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        accuracy, _ = evaluate_split(model, data, data.valid, 32, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    assert accuracy == best["valid_accuracy"]

    def here():  # not importable by a resumed run: refused before anything runs
        return as_dict()

    config["evaluator"]["dataset"] = here
    with pytest.raises(ConfigError, match=r"evaluator\.dataset: .*here is defined in a function"):
        natsray.run(config, out=tmp_path / "other", progress=False)
    assert not (tmp_path / "other").exists()


def test_the_training_evaluator_reads_the_plugin_in_prepare_shared(plugin: Path) -> None:
    config = TrainingConfig(dataset="dsplug.data:as_dict", C=4, N=1, device="cpu", threads=1, flip=False)
    evaluator = TrainingEvaluator(config, TrainingEvaluator.prepare_shared(config))
    evaluator.setup()
    assert (evaluator.data.num_classes, evaluator.data.input_size, evaluator.data.flip) == (3, 8, False)


# --- the docs' examples --------------------------------------------------------------------------------


def _extending_block(start: str) -> str:
    text = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    return next(b for _, blocks in sections(text) for _, b in blocks if b.startswith(start))


def test_docs_scoring_function_trains_without_a_budget(tmp_path: Path) -> None:
    """extending.md's scoring.py with a strategy that gives no budget (regularized_evolution):
    ``context.budget`` is None, and the function trains ``params["epochs"]`` epochs."""
    source = _extending_block("# file: scoring.py").partition("\n")[2]
    namespace: dict = {}
    exec(compile(source, "scoring.py", "exec"), namespace)
    digits = yaml.safe_load(_extending_block("# file: digits.yaml").partition("\n")[2])
    params = digits["evaluator"]["params"]
    arch = Arch.from_code(1234)
    context = types.SimpleNamespace(
        budget=None,
        params=params,
        device="cpu",
        seed=0,
        directory=tmp_path,
        model=build_model(arch, C=4, N=1, num_classes=10),
    )
    score = namespace["score_cell"](arch, context)
    assert score["epochs"] == params["epochs"] and 0 <= score["valid_accuracy"] <= 100
    assert (tmp_path / "weights.pt").is_file()


def test_docs_image_folder_example_sets_a_batch_size_that_gives_enough_steps() -> None:
    folder = yaml.safe_load(_extending_block("# file: folder.yaml").partition("\n")[2])
    config = TrainingConfig(**{k: v for k, v in folder["evaluator"].items() if k != "type"})
    assert 1000 / config.batch_size >= 15  # 1,000 training digits: 16 steps an epoch, not 4
