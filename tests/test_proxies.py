"""Zero-cost proxies: exact semantics on tiny nets, degenerate cells, determinism, the evaluator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from natsray.evaluators.costs import seeded_model
from natsray.evaluators.proxies import (
    PROXIES,
    ProxyConfig,
    ProxyEvaluator,
    compute_proxies,
    grad_norm,
    jacov,
    naswot,
    snip,
    synflow,
)
from natsray.records import Candidate
from natsray.search_space import Arch

CONV = Arch.from_str(
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
)
EMPTY = Arch(("none",) * 6)
SMALL = {"C": 4, "N": 1, "digits_size": 16, "batch_size": 16, "threads": 1}


def _tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 5, bias=False), nn.ReLU(), nn.Linear(5, 3, bias=False))


def _batch(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 2, 2, generator=generator), torch.arange(n) % 3


def test_synflow_is_the_layer_count_times_the_path_norm_for_a_bias_free_relu_net() -> None:
    model = _tiny_mlp()
    images, labels = _batch()
    w1, w2 = (layer.weight.detach().double().abs() for layer in (model[1], model[3]))
    path_norm = float((w2 @ w1 @ torch.ones(12, dtype=torch.float64)).sum())
    # Homogeneous: each layer's sum of w * dR/dw equals R itself.
    assert synflow(model, images, labels) == pytest.approx(2 * path_norm, rel=1e-12)
    assert model[1].weight.grad is None and (model[1].weight < 0).any()  # the model is left untouched


def test_snip_and_grad_norm_match_a_hand_computed_gradient() -> None:
    model = _tiny_mlp()
    images, labels = _batch()
    reference = _tiny_mlp()
    torch.nn.functional.cross_entropy(reference(images), labels).backward()
    layers = (reference[1], reference[3])
    assert snip(model, images, labels) == pytest.approx(
        sum(float((lay.weight.detach() * lay.weight.grad).abs().sum()) for lay in layers), rel=1e-6
    )
    assert grad_norm(model, images, labels) == pytest.approx(
        sum(float(lay.weight.grad.norm()) for lay in layers), rel=1e-6
    )
    both = compute_proxies(model, images, labels, ["grad_norm", "snip"])
    assert list(both) == ["grad_norm", "snip"]
    assert both["snip"] == snip(model, images, labels)


def test_naswot_is_the_logdet_of_the_hamming_kernel() -> None:
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    images, labels = _batch(5)
    codes = (images.reshape(5, -1) > 0).double().numpy()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    assert naswot(model, images, labels) == pytest.approx(np.linalg.slogdet(kernel)[1], rel=1e-12)


def test_jacov_of_independent_gradients_beats_identical_ones() -> None:
    images, labels = _batch(4)
    identity = nn.Sequential(nn.Flatten())  # per-image Jacobians = ones: all rows constant
    k = 1e-5
    rank_one = -(math.log(4 + k) + 1 / (4 + k)) - 3 * (math.log(k) + 1 / k)
    assert jacov(identity, images, labels) == pytest.approx(rank_one, rel=1e-9)
    tanh = nn.Sequential(nn.Flatten(), nn.Tanh())  # per-image Jacobians 1 - tanh(x)^2: distinct rows
    assert jacov(tanh, images, labels) > rank_one + 1e5


@pytest.fixture(scope="module")
def small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    from natsray.datasets import load_dataset

    data = load_dataset("digits", digits_size=16)
    return next(data.batches(data.train, 16))


def test_all_none_cell_is_the_worst_and_a_conv_cell_is_finite(small_batch) -> None:
    empty = compute_proxies(seeded_model(EMPTY, 0, C=4, N=1, num_classes=10), *small_batch, PROXIES)
    assert empty["synflow"] == 0.0 and empty["snip"] == 0.0 and empty["grad_norm"] == 0.0
    assert empty["naswot"] == -math.inf
    conv = compute_proxies(seeded_model(CONV, 0, C=4, N=1, num_classes=10), *small_batch, PROXIES)
    assert all(math.isfinite(value) for value in conv.values())
    assert all(conv[name] > empty[name] for name in PROXIES)


def test_proxies_are_deterministic_under_seed(small_batch) -> None:
    def run(seed: int) -> dict[str, float]:
        return compute_proxies(seeded_model(CONV, seed, C=4, N=1, num_classes=10), *small_batch, PROXIES)

    first = run(7)
    assert run(7) == first
    other = run(8)
    assert all(other[name] != first[name] for name in ("synflow", "snip", "grad_norm"))


def test_evaluator_scores_and_reports_costs() -> None:
    config = ProxyConfig(**SMALL, objective=("naswot",), report=("params", "flops"))
    candidates = [Candidate(0, CONV, seed=5), Candidate(1, EMPTY, seed=5)]
    first = ProxyEvaluator(config).evaluate(candidates)
    second = ProxyEvaluator(config).evaluate(candidates[:1])
    assert all(result.ok for result in first)
    assert first[0].objectives == {"naswot": first[0].metrics["naswot"]}
    assert set(first[0].metrics) == {*PROXIES, "params", "flops"}
    assert second[0].metrics == first[0].metrics
    assert first[1].metrics["params"] < first[0].metrics["params"]
    assert first[0].cost_s > 0


def test_synflow_alone_needs_no_dataset(tmp_path) -> None:
    config = ProxyConfig(**SMALL, dataset="cifar10", data_dir=str(tmp_path / "absent"), proxies=("synflow",))
    (result,) = ProxyEvaluator(config).evaluate([Candidate(0, CONV, seed=1)])
    assert result.ok and result.objectives["synflow"] > 0


def test_missing_dataset_fails_the_candidate_with_one_line(tmp_path) -> None:
    config = ProxyConfig(**SMALL, dataset="cifar10", data_dir=str(tmp_path))
    (result,) = ProxyEvaluator(config).evaluate([Candidate(0, CONV, seed=1)])
    assert not result.ok and "has no cifar-10-batches-py/data_batch_1" in result.error
    assert "\n" not in result.error


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (
            {"proxies": ("synflow",), "objective": ("snip",)},
            "objective: 'snip' is not one of synflow, params",
        ),
        ({"proxies": ("fisher",)}, "proxies: 'fisher' is not one of"),
        ({"report": ("valid_accuracy",)}, "report: 'valid_accuracy'"),
        ({"batch_size": 1}, "batch_size"),
        ({"dataset": "mnist"}, "dataset: 'mnist'"),
        ({"C": 0}, "C: must be a positive int"),
    ],
)
def test_config_rejects_bad_values(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProxyConfig(**fields)


def test_compute_proxies_shares_one_forward_and_equals_each_proxy_alone() -> None:
    """Issue 11, item 4: two copies and two forward passes per cell (synflow's and one shared), not one
    per proxy, with the values of the one-proxy functions."""
    import copy as copy_module

    generator = torch.Generator().manual_seed(3)
    images, labels = torch.randn(8, 3, 16, 16, generator=generator), torch.arange(8) % 10
    alone = {"synflow": synflow, "snip": snip, "grad_norm": grad_norm, "jacov": jacov, "naswot": naswot}
    for arch in (CONV, Arch.from_code(1234), Arch.from_code(9876)):
        model = seeded_model(arch, 7, C=4, N=1, num_classes=10)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        forwards = []
        model.register_forward_pre_hook(lambda module, args, _f=forwards: _f.append(1))  # copies keep it
        copies = []
        real_deepcopy = copy_module.deepcopy

        def counting_deepcopy(obj, *args, _copies=copies, _real=real_deepcopy):
            if isinstance(obj, nn.Module):
                _copies.append(1)
            return _real(obj, *args)

        copy_module.deepcopy = counting_deepcopy
        try:
            together = compute_proxies(model, images, labels, PROXIES)
        finally:
            copy_module.deepcopy = real_deepcopy
        assert len(forwards) == 2 and len(copies) == 2, (len(forwards), len(copies))
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # left unchanged
        for name, function in alone.items():
            assert together[name] == pytest.approx(function(model, images, labels), rel=1e-9, abs=1e-12), name
