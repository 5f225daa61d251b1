"""``type: cost``: a cell's parameters, FLOPs and measured inference latency.

Also home of what every torch evaluator (``cost``, ``proxy``, ``train``) shares: the config
fields of the network and its dataset (:class:`NetworkConfig`), the device and thread
choice, and :class:`CostMeter`, which the proxy and training evaluators reuse to report
``params`` / ``flops`` / ``latency``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from natsray.datasets import DATASETS, USER_DATASETS, DatasetInfo, check_dataset, check_image_size
from natsray.datasets.plugin import dataset_function, dataset_path, is_dataset_plugin, unknown_dataset
from natsray.evaluators.base import BaseEvaluator, EvaluatorError, Score
from natsray.models import build_model, count_params_flops
from natsray.records import Candidate, Objective
from natsray.search_space import Arch

__all__ = [
    "COST_METRICS",
    "CostConfig",
    "CostEvaluator",
    "CostMeter",
    "NetworkConfig",
    "actor_threads",
    "dataset_shape",
    "resolve_device",
    "seeded_model",
]

COST_METRICS: tuple[str, ...] = ("params", "flops", "latency")
"""``params`` in millions, ``flops`` in MFLOPs (xautodl's counter, as NATS-Bench), ``latency`` in seconds."""

_NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def dataset_shape(dataset: str, digits_size: int = 32) -> tuple[int, int]:
    """``(num_classes, input_size)`` of a dataset, without reading it."""
    if dataset not in _NUM_CLASSES:
        raise EvaluatorError(f"dataset: {dataset!r} is not one of {', '.join(DATASETS)}")
    size = {"digits": digits_size, "ImageNet16-120": 16}.get(dataset, 32)
    return _NUM_CLASSES[dataset], size


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when torch sees a GPU (the actor was given one), else ``cpu``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise EvaluatorError(
            "device: 'cuda' requested but torch.cuda.is_available() is False in this process"
        )
    return torch.device(device)


def actor_threads() -> int:
    """CPUs this process was given: Ray's assigned ``CPU`` inside initialised Ray, else all cores."""
    ray = sys.modules.get("ray")  # never import Ray just to ask
    if ray is not None and ray.is_initialized():
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        if cpus:
            return max(1, int(cpus))
    return os.cpu_count() or 1


def seeded_model(arch: Arch, seed: int, *, C: int, N: int, num_classes: int) -> torch.nn.Module:
    """The network of ``arch`` initialised from ``seed`` (the global torch RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch, C=C, N=N, num_classes=num_classes)


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: must be a positive int, got {value!r}")


@dataclass(frozen=True)
class NetworkConfig:
    """Fields shared by the torch evaluators: the network, its dataset, device and outputs.

    Attributes:
        dataset: One of :attr:`datasets` (default :data:`natsray.datasets.DATASETS`).
        digits_size: Image size the 8x8 digits are upsampled to (16 or 32; 8 keeps them).
        C: Channels of the first stage (NATS: 16).
        N: Cells per stage (NATS: 5).
        device: ``auto`` (GPU when the actor has one), ``cpu`` or ``cuda``.
        threads: torch intra-op threads; ``None`` = the CPUs the actor was given.
        objective: Objective specs (``name`` or ``name:max|min``) the search optimises.
        report: Extra metrics to compute and record (not optimised).
    """

    metrics: ClassVar[tuple[str, ...]] = ()
    datasets: ClassVar[tuple[str, ...]] = DATASETS
    """The ``dataset`` values it reads; ``train`` and ``proxy``, which have ``data_dir`` and
    ``image_size``, add :data:`natsray.datasets.USER_DATASETS`."""

    dataset: str = "digits"
    digits_size: int = 32
    C: int = 16
    N: int = 5
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None
    objective: tuple[str, ...] = ()
    report: tuple[str, ...] = ()

    @property
    def takes_user_data(self) -> bool:
        """Whether this evaluator reads the user's own data (``arrays``, ``folder``, a dataset plugin)."""
        return set(USER_DATASETS) <= set(self.datasets)

    @property
    def dataset_plugin(self) -> bool:
        """Whether :attr:`dataset` names a dataset plugin (:mod:`natsray.datasets.plugin`)."""
        return self.takes_user_data and is_dataset_plugin(self.dataset)

    def __post_init__(self) -> None:
        if callable(self.dataset) and self.takes_user_data:  # from Python: the plugin itself
            object.__setattr__(self, "dataset", dataset_path(self.dataset))
        if self.dataset not in self.datasets and not self.dataset_plugin:
            if not isinstance(self.dataset, str):
                raise ValueError(f"dataset: expected a string, got {type(self.dataset).__name__}")
            if self.takes_user_data:
                raise ValueError(f"dataset: {unknown_dataset(self.dataset, self.datasets)}")
            only = (
                " (arrays, folder and dataset plugins: type train or proxy)"
                if self.dataset in USER_DATASETS or is_dataset_plugin(self.dataset)
                else ""
            )
            raise ValueError(f"dataset: {self.dataset!r} is not one of {', '.join(self.datasets)}{only}")
        if self.digits_size not in (8, 16, 32):
            raise ValueError(f"digits_size: must be 8, 16 or 32, got {self.digits_size!r}")
        user_data = self.dataset in USER_DATASETS or self.dataset_plugin
        image_size = getattr(self, "image_size", None)
        if image_size is not None:
            if not user_data:
                raise ValueError(
                    f"image_size: only for dataset {', '.join(USER_DATASETS)} or a dataset plugin, "
                    f"not {self.dataset!r}" + (" (digits: digits_size)" if self.dataset == "digits" else "")
                )
            check_image_size(image_size, "image_size")
        params = getattr(self, "dataset_params", None)
        if params and not self.dataset_plugin:
            raise ValueError(
                f"dataset_params: only for a dataset plugin ('package.module:function'), not {self.dataset!r}"
            )
        if self.dataset_plugin and getattr(self, "data_dir", None) is not None:
            raise ValueError(
                f"data_dir: not read by the dataset plugin {self.dataset} (give it its arguments, a path "
                "among them, in dataset_params)"
            )
        _positive_int("C", self.C)
        _positive_int("N", self.N)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: must be auto, cpu or cuda, got {self.device!r}")
        if self.threads is not None:
            _positive_int("threads", self.threads)
        if not self.objective:
            raise ValueError("objective: give at least one metric")
        allowed = self.objective_metrics()
        for spec in self.objective:
            name = Objective.parse(spec).name
            if name not in allowed:
                raise ValueError(f"objective: {name!r} is not one of {', '.join(allowed)}")
        reportable = self.report_metrics()
        for name in self.report:
            if name not in reportable:
                raise ValueError(f"report: {name!r} is not one of {', '.join(reportable)}")

    def objective_metrics(self) -> tuple[str, ...]:
        """Metric names an objective may use."""
        return self.metrics

    def report_metrics(self) -> tuple[str, ...]:
        """Metric names ``report`` may list."""
        return self.metrics

    def check_data(self) -> DatasetInfo | None:
        """Check the user's dataset (``arrays`` / ``folder``) before a run starts; None for the others
        (a dataset plugin: imported, checked to be callable; the driver calls it in the pre-flight).

        ``natsray validate`` and ``run`` call it (through :func:`natsray.config.check_paths`),
        so malformed data is refused before Ray starts. Cheap: headers, labels, folder
        structure (:func:`natsray.datasets.check_dataset`); what only the pixels show (a
        corrupt image body, NaN) is found when the data is read.

        Raises:
            EvaluatorError: one line naming the file and what was expected.
        """
        if self.dataset_plugin:  # importable and callable; what it returns is checked when called
            dataset_function(self.dataset)
            return None
        data_dir = getattr(self, "data_dir", None)
        if self.dataset not in USER_DATASETS or data_dir is None:
            return None
        return check_dataset(self.dataset, data_dir, image_size=getattr(self, "image_size", None))

    @property
    def objective_names(self) -> tuple[str, ...]:
        """The metric names of :attr:`objective`, without direction suffixes."""
        return tuple(Objective.parse(spec).name for spec in self.objective)

    @property
    def wanted(self) -> frozenset[str]:
        """Every metric an evaluation must produce (objectives and report)."""
        return frozenset(self.objective_names) | frozenset(self.report)


class CostMeter:
    """Params / FLOPs (cached per arch) and latency of cells on one device.

    Args:
        config: The evaluator's network fields.
        device: Where latency is measured.
        batch_size: Images per timed forward pass.
        repeats: Timed passes; the median is reported.
        warmup: Untimed passes before timing.
        shape: ``(num_classes, input_size)`` of the data the network is built for; default the
            configured bundled dataset's (:func:`dataset_shape`).
    """

    def __init__(
        self,
        config: NetworkConfig,
        device: torch.device,
        *,
        batch_size: int = 1,
        repeats: int = 10,
        warmup: int = 2,
        shape: tuple[int, int] | None = None,
    ) -> None:
        self.config = config
        self.device = device
        self.batch_size = batch_size
        self.repeats = repeats
        self.warmup = warmup
        self.num_classes, self.input_size = shape or dataset_shape(config.dataset, config.digits_size)
        self._params_flops: dict[Arch, tuple[float, float]] = {}

    def params_flops(self, arch: Arch) -> tuple[float, float]:
        """``(params in millions, MFLOPs)`` of ``arch``'s network, counted once per arch."""
        if arch not in self._params_flops:
            self._params_flops[arch] = count_params_flops(
                arch,
                C=self.config.C,
                N=self.config.N,
                num_classes=self.num_classes,
                input_size=self.input_size,
            )
        return self._params_flops[arch]

    @torch.no_grad()
    def latency(self, model: torch.nn.Module) -> float:
        """Median seconds of one inference forward pass of ``model`` on :attr:`device`."""
        model = model.to(self.device).eval()
        x = torch.zeros(self.batch_size, 3, self.input_size, self.input_size, device=self.device)
        for _ in range(self.warmup):
            model(x)
        times = []
        for _ in range(self.repeats):
            self._sync()
            start = time.perf_counter()
            model(x)
            self._sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def measure(self, arch: Arch, seed: int, wanted: frozenset[str]) -> dict[str, float]:
        """The cost metrics among ``wanted`` for ``arch`` (``seed`` initialises the timed network)."""
        values: dict[str, float] = {}
        if wanted & {"params", "flops"}:
            values["params"], values["flops"] = self.params_flops(arch)
        if "latency" in wanted:
            model = seeded_model(arch, seed, C=self.config.C, N=self.config.N, num_classes=self.num_classes)
            values["latency"] = self.latency(model)
        return {name: value for name, value in values.items() if name in wanted}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@dataclass(frozen=True)
class CostConfig(NetworkConfig):
    """``evaluator`` section of ``type: cost``.

    Attributes:
        type: ``cost``.
        latency_batch_size: Images per timed forward pass.
        latency_repeats: Timed passes (median reported).
        latency_warmup: Untimed passes first.
    """

    metrics: ClassVar[tuple[str, ...]] = COST_METRICS

    type: Literal["cost"] = "cost"
    objective: tuple[str, ...] = ("params",)
    latency_batch_size: int = 1
    latency_repeats: int = 10
    latency_warmup: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int("latency_batch_size", self.latency_batch_size)
        _positive_int("latency_repeats", self.latency_repeats)
        if not isinstance(self.latency_warmup, int) or self.latency_warmup < 0:
            raise ValueError(f"latency_warmup: must be an int >= 0, got {self.latency_warmup!r}")


class CostEvaluator(BaseEvaluator):
    """Scores a cell by its size and speed: ``params``, ``flops`` (exactly NATS-Bench's
    numbers for the same dataset) and ``latency`` measured on the actor's device.

    ``cost_s`` is 0: nothing is trained. Not ``cheap``: counting FLOPs of a new cell takes
    about a second on a CPU core.
    """

    Config = CostConfig
    cheap = False

    def __init__(self, config: CostConfig, shared: object = None) -> None:
        super().__init__(config, shared)
        self.meter: CostMeter | None = None

    def setup(self) -> None:
        """Pick the device and thread count."""
        config: CostConfig = self.config
        torch.set_num_threads(config.threads or actor_threads())
        self.meter = CostMeter(
            config,
            resolve_device(config.device),
            batch_size=config.latency_batch_size,
            repeats=config.latency_repeats,
            warmup=config.latency_warmup,
        )

    def score(self, candidate: Candidate) -> Score:
        """Measure ``candidate.arch``."""
        if self.meter is None:
            self.setup()
        config: CostConfig = self.config
        values = self.meter.measure(candidate.arch, candidate.seed, config.wanted)
        objectives = {name: values[name] for name in config.objective_names}
        return Score(objectives=objectives, metrics=values, cost_s=0.0)
