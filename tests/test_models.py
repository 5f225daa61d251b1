"""Model building, params/FLOPs against the real NATS records, weights I/O."""

from __future__ import annotations

import bz2
import pickle
import sys
from pathlib import Path

import pytest
import torch

from natsray.models import TinyNet, build_model, count_params_flops, load_weights, save_weights
from natsray.search_space import OPS, Arch

RECORDS = Path(__file__).resolve().parents[2] / "shared" / "nats-tss" / "real-records"
# dataset -> (num_classes, input size) as NATS-Bench used them
DATASETS = {"cifar10": (10, 32), "cifar100": (100, 32), "ImageNet16-120": (120, 16)}


def _record(index: int) -> dict:
    path = RECORDS / f"{index:06d}.pickle.pbz2"
    if not path.is_file():
        pytest.skip(f"NATS real records not found at {RECORDS}")
    with bz2.open(path, "rb") as f:
        return pickle.load(f)


@pytest.mark.parametrize("index", [0, 11, 284])
def test_params_flops_equal_real_records(index: int) -> None:
    record = _record(index)["200"]
    arch = Arch.from_str(record["arch_str"])
    for dataset, (num_classes, size) in DATASETS.items():
        info = record["all_results"][(dataset, 777)]
        assert info["arch_config"]["arch_str"] == record["arch_str"]
        assert info["arch_config"]["class_num"] == num_classes
        params, flops = count_params_flops(arch, num_classes=num_classes, input_size=size)
        assert (params, flops) == (info["params"], info["flop"]), dataset


def test_count_leaves_global_torch_rng_alone() -> None:
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    count_params_flops(Arch(("nor_conv_1x1",) * 6), C=4, N=1)
    assert torch.equal(torch.rand(4), expected)


@pytest.mark.parametrize("op", OPS)
def test_forward_single_op_cell(op: str) -> None:
    torch.manual_seed(0)
    model = build_model(Arch((op,) * 6), C=4, N=1, num_classes=7).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        logits = model(x)
        _, direct = model.net(x)
    assert isinstance(model, TinyNet)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    assert torch.equal(logits, direct)


def test_all_none_cell_ignores_input() -> None:
    """Every cell outputs zeros, so the logits are the classifier bias whatever the input."""
    torch.manual_seed(0)
    model = build_model(Arch(("none",) * 6), C=4, N=1, num_classes=3).eval()
    with torch.no_grad():
        a = model(torch.randn(2, 3, 8, 8))
        b = model(torch.randn(2, 3, 8, 8))
    assert torch.allclose(a, b)


def test_state_dict_is_xautodl_keys_with_net_prefix() -> None:
    model = build_model(Arch(("nor_conv_3x3",) * 6), C=4, N=1)
    assert list(model.state_dict()) == [f"net.{key}" for key in model.net.state_dict()]


def test_weights_round_trip(tmp_path: Path) -> None:
    arch = Arch.from_str(
        "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
    )
    torch.manual_seed(1)
    source = build_model(arch, C=4, N=1)
    torch.manual_seed(2)
    target = build_model(arch, C=4, N=1)
    path = tmp_path / "sub" / "weights.pt"
    save_weights(source, path)
    assert load_weights(target, path) is target
    expected, got = source.state_dict(), target.state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[key], expected[key]) for key in expected)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(source.eval()(x), target.eval()(x))


def test_load_weights_errors_are_one_line(tmp_path: Path) -> None:
    model = build_model(Arch(("nor_conv_3x3",) * 6), C=4, N=1)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_weights(model, tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a torch file")
    with pytest.raises(ValueError, match=r"bad\.pt.*not a torch state dict") as info:
        load_weights(model, bad)
    assert "\n" not in str(info.value)
    other = tmp_path / "other.pt"
    save_weights(build_model(Arch(("nor_conv_3x3",) * 6), C=4, N=1, num_classes=5), other)
    with pytest.raises(ValueError, match="does not fit the model: size mismatch") as info:
        load_weights(model, other)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("field", ["C", "N", "num_classes"])
def test_bad_sizes_name_the_field(field: str) -> None:
    with pytest.raises(ValueError, match=f"model {field} must be a positive int"):
        build_model(Arch(("none",) * 6), **{field: 0})


def test_missing_xautodl_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("xautodl", "xautodl.models", "xautodl.utils"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install --no-deps xautodl==1\.0\.0") as info:
        build_model(Arch(("none",) * 6))
    assert "\n" not in str(info.value)
