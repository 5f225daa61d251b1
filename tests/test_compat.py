"""The archai-compatible search space and the arch-file format."""

from __future__ import annotations

import bz2
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from natsray import NatsbenchTssSearchSpace, NatsModel, load_arch, save_arch
from natsray.search_space import Arch, neighbours
from natsray.search_space.operators import random_sample

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "nats-tss" / "real-records"
INDEX_11 = Arch.from_str(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"
)


@pytest.fixture()
def small_archive(tmp_path: Path) -> tuple[Path, list[Arch]]:
    """A meta file holding 50 cells in a known shuffled order."""
    rng = random.Random(0)
    archs = list(dict.fromkeys(random_sample(rng) for _ in range(60)))[:50]
    directory = tmp_path / "archive"
    directory.mkdir()
    with bz2.open(directory / "meta.pickle.pbz2", "wb") as f:
        pickle.dump({"meta_archs": [str(a) for a in archs]}, f)
    return directory, archs


def _sequence(space: NatsbenchTssSearchSpace) -> list[Arch]:
    first = space.random_sample()
    out = [first.cell, space.random_sample().cell]
    out += [space.mutate(first).cell for _ in range(5)]
    out += [space.crossover([first, space.random_sample()]).cell for _ in range(5)]
    return out


def test_seeded_and_independent_of_global_random() -> None:
    random.seed(123)
    a = _sequence(NatsbenchTssSearchSpace(seed=5))
    random.seed(456)
    b = _sequence(NatsbenchTssSearchSpace(seed=5))
    assert a == b
    assert a != _sequence(NatsbenchTssSearchSpace(seed=6))


def test_mutate_is_one_of_the_24_neighbours() -> None:
    space = NatsbenchTssSearchSpace(seed=1)
    model = space.random_sample()
    children = {space.mutate(model).cell for _ in range(400)}
    assert children == set(neighbours(model.cell))


def test_without_archive() -> None:
    space = NatsbenchTssSearchSpace(base_dataset="cifar100")
    assert space.OPS == ("none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "skip_connect")
    model = space.random_sample()
    assert isinstance(model, NatsModel)
    assert model.archid == f"natsray-tss-{model.cell.code}"
    assert model.metadata == {"dataset": "cifar100"}
    assert space.encode(model).shape == (24,)
    with pytest.raises(ValueError, match="model_from_natsbench_tss needs natsbench_location"):
        space.model_from_natsbench_tss(3)
    with pytest.raises(ValueError, match="base_dataset 'mnist' is not one of"):
        NatsbenchTssSearchSpace(base_dataset="mnist")
    with pytest.raises(ValueError, match="does not exist"):
        NatsbenchTssSearchSpace("/nonexistent/nats")


def test_model_is_built_lazily_with_dataset_classes() -> None:
    model = NatsbenchTssSearchSpace(base_dataset="ImageNet16-120").random_sample()
    assert "arch" not in vars(model)
    net = model.arch
    assert model.arch is net
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 16, 16)).shape == (1, 120)


def test_index_based_methods_with_small_archive(small_archive, tmp_path: Path) -> None:
    directory, archs = small_archive
    space = NatsbenchTssSearchSpace(directory, seed=3)
    model = space.model_from_natsbench_tss(7)
    assert model.cell == archs[7] and model.archid == "natsbench-tss-7"
    path = tmp_path / "arch.yaml"
    space.save_arch(model, path)
    data = yaml.safe_load(path.read_text())
    assert data == {
        "archid": "natsbench-tss-7",
        "arch": str(archs[7]),
        "canonical": str(archs[7].canonical()),
        "dataset": "cifar10",
        "nats_index": 7,
    }
    loaded = space.load_arch(path)
    assert loaded.cell == archs[7] and loaded.archid == "natsbench-tss-7"
    # archai's own format names only the index
    archai_file = tmp_path / "archai.yaml"
    archai_file.write_text("archid: natsbench-tss-12\ndataset: cifar10\n")
    assert space.load_arch(archai_file).cell == archs[12]
    with pytest.raises(ValueError, match="resolving it needs a NATS archive"):
        load_arch(archai_file)
    with pytest.raises(ValueError, match="resolving it needs a NATS archive"):
        NatsbenchTssSearchSpace().load_arch(archai_file)
    with pytest.warns(UserWarning, match="saved for dataset 'cifar10'"):
        NatsbenchTssSearchSpace(directory, base_dataset="cifar100").load_arch(path)


def test_real_archive_ids(tmp_path: Path) -> None:
    if not (ARCHIVE / "meta.pickle.pbz2").is_file():
        pytest.skip(f"NATS meta file not found under {ARCHIVE}")
    space = NatsbenchTssSearchSpace(ARCHIVE, seed=0)
    assert space.model_from_natsbench_tss(11).cell == INDEX_11
    for _ in range(20):
        model = space.random_sample()
        assert model.archid == f"natsbench-tss-{space.index.index_of(model.cell)}"


def test_module_level_arch_files(tmp_path: Path) -> None:
    path = tmp_path / "run" / "best.yaml"
    save_arch(INDEX_11, path, dataset="cifar10", nats_index=11)
    assert load_arch(path) == INDEX_11
    plain = tmp_path / "plain.yaml"
    save_arch(INDEX_11, plain)
    assert yaml.safe_load(plain.read_text()) == {
        "archid": f"natsray-tss-{INDEX_11.code}",
        "arch": str(INDEX_11),
        "canonical": str(INDEX_11.canonical()),
    }
    assert load_arch(plain) == INDEX_11


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("arch: '|bad~0|+|none~0|none~1|+|none~0|none~1|none~2|'", "field 'arch': unknown op 'bad'"),
        ("- a\n- b\n", "must hold a YAML mapping"),
        ("archid: something-else\n", "neither 'arch' nor an 'archid: natsbench-tss-N'"),
        ("arch: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_arch_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_arch(path)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="does not exist"):
        load_arch(tmp_path / "missing.yaml")


def test_weights_round_trip(tmp_path: Path) -> None:
    space = NatsbenchTssSearchSpace(seed=2)
    torch.manual_seed(0)
    model = space.random_sample()
    path = tmp_path / "w.pt"
    space.save_model_weights(model, path)
    torch.manual_seed(1)
    other = NatsModel(model.cell, model.archid, dict(model.metadata))
    space.load_model_weights(other, path)
    for key, value in model.arch.state_dict().items():
        assert torch.equal(other.arch.state_dict()[key], value)
    assert np.array_equal(space.encode(model), space.encode(other))
