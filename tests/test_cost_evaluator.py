"""CostEvaluator: params/FLOPs equal xautodl's counter and the real NATS-Bench records; latency."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch

from natsray.evaluators import EvaluatorError, evaluator_class
from natsray.evaluators.costs import (
    CostConfig,
    CostEvaluator,
    actor_threads,
    dataset_shape,
    resolve_device,
)
from natsray.models import count_params_flops
from natsray.records import Candidate
from natsray.search_space import Arch

NATS_TSS = Path(__file__).resolve().parents[2] / "shared" / "nats-tss"
ARCH = Arch.from_str(
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"
)


def test_registry_resolves_cost() -> None:
    assert evaluator_class("cost") is CostEvaluator


@pytest.mark.parametrize(
    ("dataset", "num_classes", "size"), [("cifar100", 100, 32), ("ImageNet16-120", 120, 16)]
)
def test_params_flops_equal_the_xautodl_counter(dataset: str, num_classes: int, size: int) -> None:
    config = CostConfig(dataset=dataset, objective=("flops",), report=("params",), threads=1)
    (result,) = CostEvaluator(config).evaluate([Candidate(0, ARCH, seed=1)])
    params, flops = count_params_flops(ARCH, num_classes=num_classes, input_size=size)
    assert result.ok and result.objectives == {"flops": flops}
    assert result.metrics == {"params": params, "flops": flops}
    assert result.cost_s == 0.0


def test_counts_are_cached_per_arch() -> None:
    evaluator = CostEvaluator(CostConfig(threads=1))
    first = evaluator.evaluate([Candidate(0, ARCH, seed=1), Candidate(1, ARCH, seed=2)])
    assert first[0].objectives == first[1].objectives
    assert list(evaluator.meter._params_flops) == [ARCH]


def test_latency_is_a_positive_median_on_this_device() -> None:
    config = CostConfig(
        C=4, N=1, objective=("latency",), latency_batch_size=2, latency_repeats=3, latency_warmup=1, threads=1
    )
    evaluator = CostEvaluator(config)
    (result,) = evaluator.evaluate([Candidate(0, ARCH, seed=1)])
    assert result.ok and set(result.metrics) == {"latency"}
    assert 0 < result.objectives["latency"] < 10
    assert evaluator.meter.device == resolve_device("auto")


@pytest.mark.skipif(not (NATS_TSS / "costs.csv").is_file(), reason="needs ../shared/nats-tss/costs.csv")
def test_params_flops_equal_the_real_nats_records() -> None:
    with (NATS_TSS / "costs.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = [rows[i] for i in (0, 11, 284, 6111, 15624)]
    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        evaluator = CostEvaluator(CostConfig(dataset=dataset, report=("flops",), threads=1))
        candidates = [Candidate(i, Arch.from_str(row["arch_str"])) for i, row in enumerate(chosen)]
        for row, result in zip(chosen, evaluator.evaluate(candidates), strict=True):
            assert result.metrics["params"] == pytest.approx(float(row[f"params_{dataset}"]), abs=1e-9)
            assert result.metrics["flops"] == pytest.approx(float(row[f"flops_{dataset}"]), abs=1e-9)


def test_device_threads_and_shapes() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(EvaluatorError, match="device: 'cuda' requested"):
            resolve_device("cuda")
    assert actor_threads() == (os.cpu_count() or 1)  # Ray is not initialised in this process
    assert dataset_shape("ImageNet16-120") == (120, 16)
    assert dataset_shape("digits", 16) == (10, 16)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (
            {"objective": ("valid_accuracy",)},
            "objective: 'valid_accuracy' is not one of params, flops, latency",
        ),
        ({"objective": ()}, "objective: give at least one"),
        ({"objective": ("latency:up",)}, "direction"),
        ({"latency_repeats": 0}, "latency_repeats"),
        ({"latency_warmup": -1}, "latency_warmup"),
        ({"threads": 0}, "threads"),
        ({"digits_size": 12}, "digits_size"),
    ],
)
def test_config_rejects_bad_values(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CostConfig(**fields)
