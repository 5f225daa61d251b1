"""TrainingEvaluator: it learns, the empty cell cannot, results depend on the seed only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from natsray.datasets import load_dataset
from natsray.evaluators import evaluator_class
from natsray.evaluators.costs import seeded_model
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator
from natsray.models import load_weights
from natsray.records import Candidate
from natsray.search_space import Arch

CONV = Arch.from_str(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
)
EMPTY = Arch(("none",) * 6)
TINY = {"C": 4, "N": 1, "digits_size": 8, "batch_size": 32, "augment": False, "threads": 1, "epochs": 1}


@pytest.fixture(scope="module")
def evaluator() -> TrainingEvaluator:
    evaluator = TrainingEvaluator(TrainingConfig(**TINY, report=("test_accuracy", "params")))
    evaluator.setup()
    return evaluator


@pytest.fixture(scope="module")
def conv_result(evaluator: TrainingEvaluator):
    (result,) = evaluator.evaluate([Candidate(0, CONV, seed=11)])
    return result


def test_registry_resolves_train() -> None:
    assert evaluator_class("train") is TrainingEvaluator


def test_a_conv_cell_learns_digits_in_one_epoch(conv_result) -> None:
    assert conv_result.ok, conv_result.error
    assert conv_result.objectives == {"valid_accuracy": conv_result.metrics["valid_accuracy"]}
    assert conv_result.metrics["valid_accuracy"] > 50.0  # chance is 10 %
    assert conv_result.metrics["valid_loss"] < 2.0  # chance is ln 10 = 2.30
    assert 0 <= conv_result.metrics["test_accuracy"] <= 100
    assert conv_result.cost_s == conv_result.metrics["train_time"] > 0


def test_the_all_none_cell_predicts_one_class(evaluator: TrainingEvaluator) -> None:
    (result,) = evaluator.evaluate([Candidate(1, EMPTY, seed=11)])
    valid_labels = load_dataset("digits", digits_size=8).valid.labels
    class_shares = {100.0 * int((valid_labels == c).sum()) / len(valid_labels) for c in range(10)}
    assert result.ok and result.metrics["valid_accuracy"] in class_shares
    assert result.metrics["params"] < 0.01


def test_same_seed_same_result_other_seed_other_result(evaluator: TrainingEvaluator, conv_result) -> None:
    fresh = TrainingEvaluator(TrainingConfig(**TINY, report=("test_accuracy", "params")))
    (again,) = fresh.evaluate([Candidate(5, CONV, seed=11)])
    timeless = {k: v for k, v in conv_result.metrics.items() if k != "train_time"}
    assert {k: v for k, v in again.metrics.items() if k != "train_time"} == timeless
    (other,) = evaluator.evaluate([Candidate(6, CONV, seed=12)])
    assert other.metrics["train_loss"] != conv_result.metrics["train_loss"]


def test_every_trained_network_is_written_for_the_driver_to_rank(tmp_path: Path) -> None:
    config = TrainingConfig(**{**TINY, "train_subset": 96}, save_top_k=1, weights_dir=str(tmp_path))
    evaluator = TrainingEvaluator(config)
    evaluator.evaluate([Candidate(3, EMPTY, seed=1), Candidate(4, CONV, seed=1)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3.pt", "4.pt"]  # top k is the driver's call
    model = load_weights(seeded_model(CONV, 0, C=4, N=1, num_classes=10), tmp_path / "4.pt")
    assert isinstance(model, torch.nn.Module)


def test_save_top_k_outside_a_run_needs_weights_dir() -> None:
    (result,) = TrainingEvaluator(TrainingConfig(**TINY, save_top_k=2)).evaluate([Candidate(0, CONV)])
    assert result.error == "EvaluatorError: weights_dir: required when save_top_k > 0 outside a run"


def test_trains_on_the_real_cifar_loader(tmp_path: Path) -> None:
    from test_datasets import write_cifar10

    write_cifar10(tmp_path, per_batch=4, test=4)
    config = TrainingConfig(C=2, N=1, batch_size=8, threads=1, dataset="cifar10", data_dir=str(tmp_path))
    (result,) = TrainingEvaluator(config).evaluate([Candidate(0, CONV, seed=3)])
    assert result.ok, result.error
    assert result.metrics["valid_accuracy"] in {10.0 * k for k in range(11)}  # 10 valid images


def test_bad_dataset_dir_is_one_line(tmp_path: Path) -> None:
    config = TrainingConfig(**TINY, dataset="cifar10", data_dir=str(tmp_path))
    (result,) = TrainingEvaluator(config).evaluate([Candidate(0, CONV, seed=1)])
    assert not result.ok
    assert result.error.startswith("EvaluatorError: cifar10: ") and "\n" not in result.error
    assert "has no cifar-10-batches-py/data_batch_1" in result.error


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"objective": ("test_accuracy",)}, "objective: 'test_accuracy' is not one of"),
        ({"report": ("synflow",)}, "report: 'synflow'"),
        ({"schedule": "step"}, "schedule"),
        ({"epochs": 0}, "epochs: must be a positive int"),
        ({"checkpoint_epochs": 0}, "checkpoint_epochs: must be a positive int"),
        ({"amp": True, "device": "cpu"}, "amp: needs a CUDA device, but device is 'cpu'"),
        ({"channels_last": "yes"}, "channels_last: must be true or false"),
        ({"deterministic": "yes"}, "deterministic: must be true or false"),
        ({"deterministic": True, "cudnn_benchmark": True}, "deterministic: excludes cudnn_benchmark: true"),
        ({"train_subset": 0}, "train_subset"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_config_rejects_bad_values(fields: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainingConfig(**fields)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without a GPU")
@pytest.mark.parametrize("option", ["amp", "channels_last", "cudnn_benchmark", "cuda_graphs"])
def test_gpu_options_without_a_gpu_fail_in_one_line(option: str) -> None:
    (result,) = TrainingEvaluator(TrainingConfig(**TINY, **{option: True})).evaluate([Candidate(0, CONV)])
    assert result.error == (
        f"EvaluatorError: {option}: needs a CUDA device, but this actor runs on cpu "
        "(give it a GPU: resources.gpus_per_actor > 0)"
    )
