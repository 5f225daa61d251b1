"""``type: train``: train a cell's network with torch and score it on the validation split.

NATS-Bench's recipe by default: SGD, Nesterov momentum 0.9, lr 0.1, weight decay 5e-4, cosine
schedule to 0 stepped every iteration, random crop + flip augmentation. Everything random
(initialisation, data order, augmentation) derives from ``candidate.seed``, so a result never
depends on which actor produced it. Search scores use the validation split only; test
metrics can be reported, never optimised.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from natsray.datasets import (
    DATASETS,
    SPLIT_SEED,
    USER_DATASETS,
    DatasetInfo,
    ImageDataset,
    ImageSplit,
    load_dataset,
)
from natsray.evaluators.base import BaseEvaluator, EvaluatorError, Score
from natsray.evaluators.costs import (
    COST_METRICS,
    CostMeter,
    NetworkConfig,
    actor_threads,
    resolve_device,
    seeded_model,
)
from natsray.evaluators.graphed_step import GraphedSGDStep
from natsray.models import save_weights
from natsray.records import Candidate

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

GPU_OPTIONS: tuple[str, ...] = ("amp", "channels_last", "cudnn_benchmark", "cuda_graphs")
"""Boolean config keys that need a CUDA device."""


@dataclass(frozen=True)
class TrainingConfig(NetworkConfig):
    """``evaluator`` section of ``type: train``.

    Attributes:
        type: ``train``.
        data_dir: Dataset directory (not needed for ``digits``); for ``dataset: arrays`` the
            ``.npz`` file, for ``dataset: folder`` the root of the image-folder tree.
        dataset_params: A dataset plugin's keyword arguments (``dataset: "package.module:function"``,
            :mod:`natsray.datasets.plugin`; called once, in the driver).
        image_size: ``arrays`` / ``folder`` / a dataset plugin: height = width every image is resized to (a
            multiple of 4); None keeps the images' own size, which must then be one square
            size for all of them.
        flip: Whether augmentation flips horizontally; None: the dataset's default (off for
            digits, on for the others, as NATS-Bench).
        epochs: Training epochs.
        batch_size: Training (and evaluation) batch size.
        lr: Initial learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay.
        schedule: ``cosine`` (to 0 over all iterations) or ``constant``.
        train_subset: Train on only this many training images (the same ones for every candidate).
        augment: NATS augmentation (random crop; plus horizontal flip except for digits).
        save_top_k: Keep the weights of the run's best ``k`` networks by the first objective:
            every trained network is written as ``<weights_dir>/<candidate id>.pt`` and the
            driver deletes those that fall out of the run-wide top ``k``
            (:mod:`natsray.engine.weights`).
        weights_dir: Where those weights go; default ``<run dir>/weights``.
        checkpoint_epochs: Save a candidate's training state (model, optimizer, learning-rate
            schedule position, RNG, epoch) every this many epochs, so a candidate whose actor
            died resumes from it on the replacement actor with the same final result.
        state_dir: Where training states go (``<candidate id>.pt``, deleted when the candidate
            finishes); default ``<run dir>/training_state``.
        amp: Mixed precision on CUDA: bf16 autocast where the GPU supports it, else fp16
            autocast with a gradient scaler.
        channels_last: Model and batches in ``torch.channels_last`` memory format (CUDA).
        cudnn_benchmark: ``torch.backends.cudnn.benchmark = True`` (CUDA).
        cuda_graphs: Capture each candidate's training step as a CUDA graph after 3 eager
            steps and replay it for every full batch (:mod:`natsray.evaluators.graphed_step`):
            one launch a step instead of some thousand. On an H200 the median NATS cell trained
            1.14-1.21 times as fast as a plain fp32 loop with it, and 1.82-1.98 times with
            ``amp`` and ``channels_last`` too (docs/training.md, "CUDA graphs"). Same recipe and
            seed; each step equals the eager one to floating-point rounding (a whole training is
            not a bit-copy of an eager one; with ``deterministic`` it repeats itself). With ``amp`` it
            needs a GPU with bfloat16 (fp16's gradient scaler reads the host every step).
        deterministic: Bit-reproducible training on CUDA: ``torch.backends.cudnn.deterministic``,
            ``torch.use_deterministic_algorithms(True)`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8``
            (PyTorch's reproducibility notes). Without it the same seed on a GPU can give
            metrics that differ in the last digits (cuDNN's fastest kernels sum in a varying
            order); on CPU training is reproducible either way. Set process-wide in the actor;
            an op without a deterministic CUDA kernel then fails the candidate with PyTorch's
            one-line error. Excludes ``cudnn_benchmark``.
    """

    metrics: ClassVar[tuple[str, ...]] = TRAIN_METRICS
    datasets: ClassVar[tuple[str, ...]] = (*DATASETS, *USER_DATASETS)

    type: Literal["train"] = "train"
    data_dir: str | None = None
    dataset_params: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    flip: bool | None = None
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
    checkpoint_epochs: int | None = None
    state_dir: str | None = None
    amp: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = False
    cuda_graphs: bool = False
    deterministic: bool = False
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
        if self.checkpoint_epochs is not None and (
            not isinstance(self.checkpoint_epochs, int) or self.checkpoint_epochs < 1
        ):
            raise ValueError(
                f"checkpoint_epochs: must be a positive int or null, got {self.checkpoint_epochs!r}"
            )
        if self.flip is not None and not isinstance(self.flip, bool):
            raise ValueError(f"flip: must be true, false or null, got {self.flip!r}")
        for name in GPU_OPTIONS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be true or false, got {getattr(self, name)!r}")
            if getattr(self, name) and self.device == "cpu":
                raise ValueError(f"{name}: needs a CUDA device, but device is 'cpu'")
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic: must be true or false, got {self.deterministic!r}")
        if self.deterministic and self.cudnn_benchmark:
            raise ValueError(
                "deterministic: excludes cudnn_benchmark: true (the autotuner picks kernels by timing)"
            )

    @property
    def gpu_options(self) -> tuple[str, ...]:
        """The GPU-only options that are on."""
        return tuple(name for name in GPU_OPTIONS if getattr(self, name))

    def report_metrics(self) -> tuple[str, ...]:
        return (*TRAIN_METRICS, *REPORT_ONLY)

    def check_data(self) -> DatasetInfo | None:
        """:meth:`NetworkConfig.check_data`, and a test split when ``report`` asks for test metrics.

        Malformed pixel data is found when the driver reads it
        (:meth:`TrainingEvaluator.prepare_shared`).
        """
        info = super().check_data()
        if info is not None:
            _require_test_split(self, info.sizes["test"], str(info.path))
        return info


def _require_test_split(config: TrainingConfig, test_images: int, where: str) -> None:
    """Refuse ``report: [test_accuracy]`` (or ``test_loss``) on data without a test split."""
    wanted = [name for name in REPORT_ONLY if name in config.wanted]
    if wanted and not test_images:
        raise EvaluatorError(
            f"report: {wanted[0]} needs a test split, and {where} has none (x_test/y_test, or test/)"
        )


@torch.no_grad()
def evaluate_split(
    model: nn.Module, data: ImageDataset, split: ImageSplit, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """``(accuracy in %, mean cross-entropy)`` of ``model`` (eval mode) on ``split``.

    The sums stay on ``device`` until the end: one synchronisation per call, not per batch.
    """
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for images, labels in data.batches(split, batch_size, device=device):
        logits = model(images)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        correct += (logits.argmax(1) == labels).sum()
    return 100.0 * int(correct) / len(split), float(loss_sum) / len(split)


class TrainingEvaluator(BaseEvaluator):
    """Trains each candidate's network from scratch and scores it on the validation split.

    ``cost_s`` is the measured training seconds (the ``train_time`` metric). With
    ``checkpoint_epochs`` the metric ``resumed_epoch`` says from which epoch the training
    continued (0: from scratch). A candidate's ``budget`` is its number of epochs (``epochs``
    when None): a whole training from scratch with the cosine schedule over that many epochs,
    as NATS-Bench's hp-12 and hp-200 runs are two independent trainings.
    """

    Config = TrainingConfig
    cheap = False

    def __init__(self, config: TrainingConfig, shared: object = None) -> None:
        super().__init__(config, shared)
        self.data: ImageDataset | None = None

    @classmethod
    def for_run(cls, config: TrainingConfig, run_dir: Path) -> TrainingConfig:
        """Weights in ``<run dir>/weights``, training states in ``<run dir>/training_state`` by default
        (absolute: the actors run in Ray's copy of ``ray.runtime_env.working_dir`` when one is set)."""
        if config.save_top_k and config.weights_dir is None:
            config = replace(config, weights_dir=str(Path(run_dir).resolve() / "weights"))
        if config.checkpoint_epochs and config.state_dir is None:
            config = replace(config, state_dir=str(Path(run_dir).resolve() / "training_state"))
        return config

    @classmethod
    def prepare_shared(cls, config: TrainingConfig) -> dict[str, Any]:
        """Read the dataset once on the driver (training subset applied) as plain numpy data.

        The runner puts it in the object store once; every actor on a node maps that one copy
        (:meth:`ImageDataset.to_shared`), instead of reading its own.

        Raises:
            EvaluatorError: one line, for a missing or malformed dataset.
        """
        data = load_dataset(
            config.dataset,
            config.data_dir,
            digits_size=config.digits_size,
            image_size=config.image_size,
            params=config.dataset_params,
        )
        _require_test_split(config, len(data.test), data.split_source)
        if config.flip is not None:
            data = replace(data, flip=config.flip)
        if config.train_subset is not None and config.train_subset < len(data.train):
            order = np.random.default_rng(SPLIT_SEED).permutation(len(data.train))
            data = replace(data, train=data.train.subset(order[: config.train_subset]))
        return data.to_shared()

    def setup(self) -> None:
        """Pick device, threads and GPU options; view the shared dataset (or read it here).

        Raises:
            EvaluatorError: one line, for a GPU option without a CUDA device, or a missing
                ``weights_dir`` / ``state_dir`` outside a run.
        """
        config: TrainingConfig = self.config
        torch.set_num_threads(config.threads or actor_threads())
        self.device = resolve_device(config.device)
        if config.gpu_options and self.device.type != "cuda":
            raise EvaluatorError(
                f"{config.gpu_options[0]}: needs a CUDA device, but this actor runs on "
                f"{self.device.type} (give it a GPU: resources.gpus_per_actor > 0)"
            )
        if config.save_top_k and not config.weights_dir:
            raise EvaluatorError("weights_dir: required when save_top_k > 0 outside a run")
        if config.checkpoint_epochs and not config.state_dir:
            raise EvaluatorError("state_dir: required when checkpoint_epochs is set outside a run")
        if config.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read by cuBLAS at its first use
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.amp_dtype = (
            (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if config.amp else None
        )
        if config.cuda_graphs and self.amp_dtype == torch.float16:
            raise EvaluatorError(
                "cuda_graphs: with amp needs a GPU with bfloat16 (fp16's gradient scaler reads "
                "the host every step); set amp: false or cuda_graphs: false"
            )
        shared = self.shared if self.shared is not None else self.prepare_shared(config)
        # resident on the training device: one uint8 copy per actor, no per-batch transfer (a
        # no-op on CPU, where the tensors stay views of the object store's shared copy)
        self.data = ImageDataset.from_shared(shared).to(self.device)
        self.meter = CostMeter(config, self.device, shape=(self.data.num_classes, self.data.input_size))
        self.train_split = self.data.train

    def score(self, candidate: Candidate) -> Score:
        """Train ``candidate.arch`` from ``candidate.seed`` (or its saved state) and measure it."""
        if self.data is None:
            self.setup()
        config: TrainingConfig = self.config
        model = seeded_model(
            candidate.arch, candidate.seed, C=config.C, N=config.N, num_classes=self.data.num_classes
        ).to(self.device, memory_format=self.memory_format)
        start = time.perf_counter()
        run = _TrainingRun(self, model, candidate)
        train_accuracy, train_loss = run.train()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        train_time = run.earlier_seconds + time.perf_counter() - start

        valid_accuracy, valid_loss = self._evaluate(model, self.data.valid)
        values = {
            "valid_accuracy": valid_accuracy,
            "valid_loss": valid_loss,
            "train_accuracy": train_accuracy,
            "train_loss": train_loss,
            "train_time": train_time,
        }
        if config.checkpoint_epochs:
            values["resumed_epoch"] = run.resumed_epoch
        if config.wanted & set(REPORT_ONLY):
            values["test_accuracy"], values["test_loss"] = self._evaluate(model, self.data.test)
        values.update(self.meter.measure(candidate.arch, candidate.seed, config.wanted & set(COST_METRICS)))
        objectives = {name: values[name] for name in config.objective_names}
        if config.save_top_k:  # the driver deletes it when it falls out of the run's top k
            save_weights(
                model.to(memory_format=torch.contiguous_format),
                Path(config.weights_dir) / f"{candidate.id}.pt",
            )
        run.finish()
        return Score(objectives=objectives, metrics=values, cost_s=train_time)

    def _evaluate(self, model: nn.Module, split: ImageSplit) -> tuple[float, float]:
        with self._autocast():
            return evaluate_split(model, self.data, split, self.config.batch_size, self.device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        # a captured step must not reuse casts cached outside the capture (PyTorch's CUDA graph notes)
        cache = not self.config.cuda_graphs
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype, cache_enabled=cache)


class _TrainingRun:
    """One candidate's training: SGD + schedule, checkpointed every ``checkpoint_epochs`` epochs.

    The saved state (``<state_dir>/<candidate id>.pt``) holds the model, optimizer and grad
    scaler state dicts, the schedule position (iterations done), the data-order /
    augmentation generator's state, torch's global RNG state and the epoch: everything the
    rest of the training depends on, so resuming reproduces the uninterrupted run exactly
    (bit-equal on CPU with the same thread count).
    """

    def __init__(self, evaluator: TrainingEvaluator, model: nn.Module, candidate: Candidate) -> None:
        config: TrainingConfig = evaluator.config
        self.evaluator, self.config, self.model, self.candidate = evaluator, config, model, candidate
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        self.scaler = torch.amp.GradScaler("cuda") if evaluator.amp_dtype == torch.float16 else None
        self.generator = torch.Generator().manual_seed(candidate.seed)
        self.epochs = config.epochs if candidate.budget is None else candidate.budget
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise EvaluatorError(f"budget: epochs must be a positive int, got {candidate.budget!r}")
        self.path = Path(config.state_dir) / f"{candidate.id}.pt" if config.checkpoint_epochs else None
        self.epoch = self.step = 0
        self.earlier_seconds = 0.0
        self.resumed_epoch = 0
        if self.path is not None and self.path.is_file():
            self._load()

    def train(self) -> tuple[float, float]:
        """Train in place; ``(accuracy %, mean loss)`` over the last epoch's training batches."""
        config, evaluator, model = self.config, self.evaluator, self.model
        steps_per_epoch = math.ceil(len(evaluator.train_split) / config.batch_size)
        total_steps = self.epochs * steps_per_epoch
        started = time.perf_counter()
        correct = loss_sum = None
        seen = 0
        graphed = self._graphed_step() if config.cuda_graphs else None
        while self.epoch < self.epochs:
            model.train()
            # running sums stay on the device: no synchronisation per step, one per training
            if graphed is not None:
                graphed.reset_sums()
                correct, loss_sum = graphed.correct, graphed.loss_sum
            else:
                correct = torch.zeros((), dtype=torch.long, device=evaluator.device)
                loss_sum = torch.zeros((), dtype=torch.float64, device=evaluator.device)
            seen = 0
            batches = evaluator.data.batches(
                evaluator.train_split,
                config.batch_size,
                generator=self.generator,
                augment=config.augment,
                device=evaluator.device,
            )
            for images, labels in batches:
                lr = config.lr
                if config.schedule == "cosine":
                    lr = 0.5 * config.lr * (1.0 + math.cos(math.pi * self.step / total_steps))
                images = images.contiguous(memory_format=evaluator.memory_format)
                if graphed is not None:
                    graphed(images, labels, lr)
                else:
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    loss, logits = self._step(images, labels)
                    loss_sum += loss.detach().double() * len(labels)
                    correct += (logits.detach().argmax(1) == labels).sum()
                self.step += 1
                seen += len(labels)
            self.epoch += 1
            every = config.checkpoint_epochs
            if every and self.epoch % every == 0 and self.epoch < self.epochs:
                self._save(time.perf_counter() - started)
        return 100.0 * int(correct) / seen, float(loss_sum) / seen

    def _graphed_step(self) -> GraphedSGDStep:
        config = self.config
        return GraphedSGDStep(
            self.model,
            self.optimizer,
            batch_size=config.batch_size,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
            autocast=self.evaluator._autocast,
            capture=self.evaluator.device.type == "cuda",
        )

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.evaluator._autocast():
            logits = self.model(images)
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss, logits

    def _save(self, seconds: float) -> None:
        state = {
            "arch": self.candidate.arch.to_str(),
            "seed": self.candidate.seed,
            "epochs": self.epochs,
            "epoch": self.epoch,
            "step": self.step,
            "seconds": self.earlier_seconds + seconds,
            "worker": self.evaluator.worker,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        torch.save(state, partial)
        os.replace(partial, self.path)  # a kill mid-write leaves the previous state intact

    def _load(self) -> None:
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        key = (self.candidate.arch.to_str(), self.candidate.seed, self.epochs)
        if (state["arch"], state["seed"], state["epochs"]) != key:
            return  # another run's or another budget's state: train from scratch
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = self.resumed_epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.earlier_seconds = float(state["seconds"])

    def finish(self) -> None:
        """Delete the saved state: the candidate is done."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
