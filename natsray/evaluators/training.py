"""``type: train``: train a cell's network with torch and score it on the validation split.

NATS-Bench's recipe by default: SGD, Nesterov momentum 0.9, lr 0.1, weight decay 5e-4, cosine
schedule to 0 stepped every iteration, random crop + flip augmentation. Everything random
(initialisation, data order, augmentation) derives from ``candidate.seed``, so a result never
depends on which actor produced it. Search scores use the validation split only; test
metrics can be reported, never optimised.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from natsray.datasets import SPLIT_SEED, ImageDataset, ImageSplit, load_dataset
from natsray.evaluators.base import BaseEvaluator, Score
from natsray.evaluators.costs import (
    COST_METRICS,
    CostMeter,
    NetworkConfig,
    actor_threads,
    resolve_device,
    seeded_model,
)
from natsray.models import save_weights
from natsray.records import Candidate, Objective

__all__ = ["REPORT_ONLY", "TRAIN_METRICS", "TrainingConfig", "TrainingEvaluator", "evaluate_split"]

TRAIN_METRICS: tuple[str, ...] = (
    "valid_accuracy",
    "valid_loss",
    "train_accuracy",
    "train_loss",
    "train_time",
    *COST_METRICS,
)
"""What a search may optimise: accuracies in %, mean cross-entropy losses, ``train_time`` in seconds."""

REPORT_ONLY: tuple[str, ...] = ("test_accuracy", "test_loss")


@dataclass(frozen=True)
class TrainingConfig(NetworkConfig):
    """``evaluator`` section of ``type: train``.

    Attributes:
        type: ``train``.
        data_dir: Dataset directory (not needed for ``digits``).
        epochs: Training epochs.
        batch_size: Training (and evaluation) batch size.
        lr: Initial learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay.
        schedule: ``cosine`` (to 0 over all iterations) or ``constant``.
        train_subset: Train on only this many training images (the same ones for every candidate).
        augment: NATS augmentation (random crop; plus horizontal flip except for digits).
        save_top_k: Keep the weights of this actor's best ``k`` networks by the first objective.
        weights_dir: Where those weights go (``<candidate id>.pt``); required when ``save_top_k > 0``.
    """

    metrics: ClassVar[tuple[str, ...]] = TRAIN_METRICS

    type: Literal["train"] = "train"
    data_dir: str | None = None
    epochs: int = 1
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    train_subset: int | None = None
    augment: bool = True
    save_top_k: int = 0
    weights_dir: str | None = None
    objective: tuple[str, ...] = ("valid_accuracy",)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum: must be in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: needs momentum > 0")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay: must be >= 0, got {self.weight_decay!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule: must be cosine or constant, got {self.schedule!r}")
        if self.train_subset is not None and (
            not isinstance(self.train_subset, int) or self.train_subset < 1
        ):
            raise ValueError(f"train_subset: must be a positive int or null, got {self.train_subset!r}")
        if not isinstance(self.save_top_k, int) or self.save_top_k < 0:
            raise ValueError(f"save_top_k: must be an int >= 0, got {self.save_top_k!r}")
        if self.save_top_k and not self.weights_dir:
            raise ValueError("weights_dir: required when save_top_k > 0")

    def report_metrics(self) -> tuple[str, ...]:
        return (*TRAIN_METRICS, *REPORT_ONLY)


@torch.no_grad()
def evaluate_split(
    model: nn.Module, data: ImageDataset, split: ImageSplit, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """``(accuracy in %, mean cross-entropy)`` of ``model`` (eval mode) on ``split``."""
    model.eval()
    correct, loss_sum = 0, 0.0
    for images, labels in data.batches(split, batch_size, device=device):
        logits = model(images)
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
    return 100.0 * correct / len(split), loss_sum / len(split)


class TrainingEvaluator(BaseEvaluator):
    """Trains each candidate's network from scratch and scores it on the validation split.

    ``cost_s`` is the measured training seconds (the ``train_time`` metric).
    """

    Config = TrainingConfig
    cheap = False

    def __init__(self, config: TrainingConfig, shared: object = None) -> None:
        super().__init__(config, shared)
        self.data: ImageDataset | None = None
        self._top: list[tuple[float, int]] = []  # min-heap of (signed first objective, candidate id)

    @classmethod
    def prepare_shared(cls, config: TrainingConfig) -> dict[str, Any]:
        """Read the dataset once on the driver (training subset applied) as plain numpy data.

        The runner puts it in the object store once; every actor on a node maps that one copy from the
        object store (:meth:`ImageDataset.to_shared`), instead of reading its own.

        Raises:
            EvaluatorError: one line, for a missing or malformed dataset.
        """
        data = load_dataset(config.dataset, config.data_dir, digits_size=config.digits_size)
        if config.train_subset is not None and config.train_subset < len(data.train):
            order = np.random.default_rng(SPLIT_SEED).permutation(len(data.train))
            data = replace(data, train=data.train.subset(order[: config.train_subset]))
        return data.to_shared()

    def setup(self) -> None:
        """Pick device and threads; view the shared dataset (or read it here when none is shared)."""
        config: TrainingConfig = self.config
        torch.set_num_threads(config.threads or actor_threads())
        self.device = resolve_device(config.device)
        self.meter = CostMeter(config, self.device)
        shared = self.shared if self.shared is not None else self.prepare_shared(config)
        self.data = ImageDataset.from_shared(shared)
        self.train_split = self.data.train

    def score(self, candidate: Candidate) -> Score:
        """Train ``candidate.arch`` from ``candidate.seed`` and measure it."""
        if self.data is None:
            self.setup()
        config: TrainingConfig = self.config
        model = seeded_model(
            candidate.arch, candidate.seed, C=config.C, N=config.N, num_classes=self.data.num_classes
        ).to(self.device)
        generator = torch.Generator().manual_seed(candidate.seed)
        start = time.perf_counter()
        train_accuracy, train_loss = self._train(model, generator)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        train_time = time.perf_counter() - start

        valid_accuracy, valid_loss = evaluate_split(
            model, self.data, self.data.valid, config.batch_size, self.device
        )
        values = {
            "valid_accuracy": valid_accuracy,
            "valid_loss": valid_loss,
            "train_accuracy": train_accuracy,
            "train_loss": train_loss,
            "train_time": train_time,
        }
        if config.wanted & set(REPORT_ONLY):
            values["test_accuracy"], values["test_loss"] = evaluate_split(
                model, self.data, self.data.test, config.batch_size, self.device
            )
        values.update(self.meter.measure(candidate.arch, candidate.seed, config.wanted & set(COST_METRICS)))
        objectives = {name: values[name] for name in config.objective_names}
        self._keep_top(model, candidate.id, objectives)
        return Score(objectives=objectives, metrics=values, cost_s=train_time)

    def _train(self, model: nn.Module, generator: torch.Generator) -> tuple[float, float]:
        """Train in place; ``(accuracy %, mean loss)`` over the last epoch's training batches."""
        config: TrainingConfig = self.config
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        steps_per_epoch = math.ceil(len(self.train_split) / config.batch_size)
        total_steps = config.epochs * steps_per_epoch
        step = 0
        for _ in range(config.epochs):
            model.train()
            correct, loss_sum, seen = 0, 0.0, 0
            batches = self.data.batches(
                self.train_split,
                config.batch_size,
                generator=generator,
                augment=config.augment,
                device=self.device,
            )
            for images, labels in batches:
                if config.schedule == "cosine":
                    for group in optimizer.param_groups:
                        group["lr"] = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total_steps))
                logits = model(images)
                loss = F.cross_entropy(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                loss_sum += float(loss.detach()) * len(labels)
                correct += int((logits.detach().argmax(1) == labels).sum())
                seen += len(labels)
        return 100.0 * correct / seen, loss_sum / seen

    def _keep_top(self, model: nn.Module, candidate_id: int, objectives: dict[str, float]) -> None:
        """Save ``model`` if it is among this actor's ``save_top_k`` best; delete the one it displaces."""
        config: TrainingConfig = self.config
        if not config.save_top_k:
            return
        first = Objective.parse(config.objective[0])
        value = objectives[first.name]
        entry = (value if first.maximize else -value, candidate_id)
        directory = Path(config.weights_dir)
        if len(self._top) < config.save_top_k:
            heapq.heappush(self._top, entry)
        elif entry > self._top[0]:
            _, displaced = heapq.heapreplace(self._top, entry)
            (directory / f"{displaced}.pt").unlink(missing_ok=True)
        else:
            return
        save_weights(model, directory / f"{candidate_id}.pt")
