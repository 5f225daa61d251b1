"""``type: proxy``: zero-cost proxies, scored on a network at initialisation.

Implemented from the papers, matching the semantics of the authors' code:

- ``synflow``, ``snip``, ``grad_norm``, ``jacov``: Abdelfattah et al. 2021, "Zero-Cost Proxies
  for Lightweight NAS" (ICLR), reference code SamsungLabs/zero-cost-nas.
- ``naswot``: Mellor et al. 2021, "Neural Architecture Search without Training" (ICML), the
  log-determinant of the binary ReLU-activation kernel.

Every proxy sees the same freshly initialised network (train mode, as the reference code)
and minibatch, so one evaluation = one network and one minibatch. Larger is better for all
five. :func:`compute_proxies` (what the evaluator runs) shares the work: ``naswot``, ``jacov``,
``snip`` and ``grad_norm`` come from ONE forward pass of one copy of the network (ReLU hooks
for ``naswot``; the input gradient of the summed logits for ``jacov``; the cross-entropy's
weight gradients for ``snip`` / ``grad_norm``), ``synflow`` from its own batch-1 float64
pass; the values equal those of the one-proxy functions below (docs/proxies.md: the time
per cell, before and after).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from natsray.datasets import DATASETS, SPLIT_SEED, USER_DATASETS, load_dataset
from natsray.evaluators.base import BaseEvaluator, Score
from natsray.evaluators.costs import (
    COST_METRICS,
    CostMeter,
    NetworkConfig,
    actor_threads,
    dataset_shape,
    resolve_device,
    seeded_model,
)
from natsray.records import Candidate

__all__ = [
    "PROXIES",
    "ProxyConfig",
    "ProxyEvaluator",
    "compute_proxies",
    "grad_norm",
    "jacov",
    "naswot",
    "snip",
    "synflow",
]

_JACOV_K = 1e-5  # the reference code's regulariser of the eigenvalues


def _weight_layers(model: nn.Module) -> list[nn.Module]:
    """The layers the zero-cost-nas proxies sum over: every Conv2d and Linear."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _without_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm replaced by identity (zero-cost-nas: synflow's net has no BN)."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            _without_batchnorm(child)
    return model


def synflow(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Synaptic flow (Tanaka et al. 2020) as a proxy: sum of ``|w * dR/dw|`` over conv/linear weights.

    Data-free: ``R`` is the sum of the outputs for an all-ones input, in float64, with every
    parameter replaced by its absolute value and BatchNorm removed. ``images`` only gives the
    input shape; ``labels`` is unused.
    """
    net = _without_batchnorm(copy.deepcopy(model)).double()
    with torch.no_grad():
        for param in net.parameters():
            param.abs_()
    x = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    net(x).sum().backward()
    return _sum_over_weights(net, lambda w, g: (w * g).abs().sum())


def _loss_backward(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> nn.Module:
    """A copy of ``model`` holding the gradients of the cross-entropy on one batch."""
    net = copy.deepcopy(model)
    F.cross_entropy(net(images), labels).backward()
    return net


def _sum_over_weights(net: nn.Module, term: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
    """``sum(term(weight, grad))`` over the conv/linear layers whose weight got a gradient."""
    total = 0.0
    for layer in _weight_layers(net):
        if layer.weight.grad is not None:
            total += float(term(layer.weight.detach(), layer.weight.grad).double())
    return total


def _snip_of(net: nn.Module) -> float:
    return _sum_over_weights(net, lambda w, g: (w * g).abs().sum())


def _grad_norm_of(net: nn.Module) -> float:
    return _sum_over_weights(net, lambda w, g: g.norm())


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """SNIP saliency (Lee et al. 2019): sum of ``|w * dL/dw|`` for the cross-entropy ``L`` of one batch."""
    return _snip_of(_loss_backward(model, images, labels))


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum over conv/linear layers of the L2 norm of ``dL/dw`` for the cross-entropy of one batch."""
    return _grad_norm_of(_loss_backward(model, images, labels))


def jacov(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Jacobian covariance (Mellor et al. 2020, v1): ``-sum(log(v + k) + 1/(v + k))``, ``k = 1e-5``.

    ``v`` are the eigenvalues of the correlation matrix of the per-image input gradients of the
    summed outputs. A constant gradient row (the output does not depend on that input) has no
    correlation; it is counted as perfectly correlated, so a network ignoring its input gets the
    worst score, that of a rank-one correlation matrix. ``labels`` is unused.
    """
    net = copy.deepcopy(model)
    x = images.detach().clone().requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    return _jacov_of(x.grad)


def _jacov_of(input_grad: torch.Tensor) -> float:
    """jacov from the per-image input gradients of the summed outputs, shape ``(batch, ...)``."""
    jacobian = input_grad.reshape(len(input_grad), -1).double().cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jacobian)
    corr = np.where(np.isnan(corr), 1.0, corr)
    eigenvalues = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(eigenvalues + _JACOV_K) + 1.0 / (eigenvalues + _JACOV_K)))


def naswot(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """NASWOT score (Mellor et al. 2021): ``log|det K|`` of the binary ReLU-activation kernel.

    Each image gets a binary code: for every unit entering every ReLU, whether it is active.
    ``K[i, j]`` counts the units on which images ``i`` and ``j`` agree (``c c^T + (1-c)(1-c)^T``
    summed over ReLUs). A singular ``K`` (e.g. no ReLU sees the input) scores ``-inf``.
    ``labels`` is unused.
    """
    net = copy.deepcopy(model)
    with torch.no_grad(), _relu_kernel(net, len(images), images.device) as kernel:
        net(images)
    return _logdet(kernel)


@contextlib.contextmanager
def _relu_kernel(net: nn.Module, n: int, device: torch.device) -> Iterator[torch.Tensor]:
    """NASWOT's ``(n, n)`` kernel, accumulated by hooks on every ReLU during the forward passes inside."""
    kernel = torch.zeros(n, n, dtype=torch.float64, device=device)

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        # c c^T + (1-c)(1-c)^T = 2 c c^T - a 1^T - 1 a^T + units, a = active units per image: one
        # matmul; float32 is exact here (0/1 products, sums of at most `units` < 2^24)
        units = inputs[0][0].numel()
        code = (inputs[0].detach().reshape(n, -1) > 0).to(torch.float32 if units < 2**24 else torch.float64)
        active = code.sum(dim=1, dtype=torch.float64)
        agree = 2.0 * (code @ code.T).double() - active[:, None] - active[None, :] + code.shape[1]
        kernel.add_(agree)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        yield kernel
    finally:
        for handle in handles:
            handle.remove()


def _logdet(kernel: torch.Tensor) -> float:
    sign, logdet = np.linalg.slogdet(kernel.cpu().numpy())
    return float(logdet) if sign > 0 else float("-inf")


def _one_pass(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, names: set[str]
) -> dict[str, float]:
    """naswot, jacov, snip and grad_norm (those in ``names``) from one forward pass of one copy."""
    net = copy.deepcopy(model)
    x = images.detach().clone().requires_grad_("jacov" in names)
    weights = bool(names & {"snip", "grad_norm"})
    with contextlib.ExitStack() as stack:
        kernel = stack.enter_context(_relu_kernel(net, len(x), x.device)) if "naswot" in names else None
        if not x.requires_grad and not weights:
            stack.enter_context(torch.no_grad())
        out = net(x)
    values: dict[str, float] = {}
    if kernel is not None:
        values["naswot"] = _logdet(kernel)
    if "jacov" in names:
        (input_grad,) = torch.autograd.grad(out, x, torch.ones_like(out), retain_graph=weights)
        values["jacov"] = _jacov_of(input_grad)
    if weights:
        F.cross_entropy(out, labels).backward()
        if "snip" in names:
            values["snip"] = _snip_of(net)
        if "grad_norm" in names:
            values["grad_norm"] = _grad_norm_of(net)
    return values


_PROXY_FUNCTIONS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "synflow": synflow,
    "snip": snip,
    "grad_norm": grad_norm,
    "jacov": jacov,
    "naswot": naswot,
}
PROXIES: tuple[str, ...] = tuple(_PROXY_FUNCTIONS)


def compute_proxies(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, names: Sequence[str]
) -> dict[str, float]:
    """The proxies ``names`` of ``model`` (left unchanged) on one batch.

    At most two copies of the network and two forward passes whatever ``names`` holds:
    ``synflow``'s (batch 1, float64, no BatchNorm) and one shared by the other four.
    """
    for name in names:
        if name not in _PROXY_FUNCTIONS:
            raise ValueError(f"unknown proxy {name!r}: expected one of {', '.join(PROXIES)}")
    values = _one_pass(model, images, labels, set(names) - {"synflow"}) if set(names) - {"synflow"} else {}
    if "synflow" in names:
        values["synflow"] = synflow(model, images, labels)
    return {name: values[name] for name in names}


@dataclass(frozen=True)
class ProxyConfig(NetworkConfig):
    """``evaluator`` section of ``type: proxy``.

    Attributes:
        type: ``proxy``.
        proxies: Proxies computed (and recorded) for every candidate.
        data_dir: Dataset directory (not needed for ``digits``); for ``dataset: arrays`` the
            ``.npz`` file, for ``dataset: folder`` the root of the image-folder tree.
        dataset_params: A dataset plugin's keyword arguments (called once per actor, in its setup).
        image_size: ``arrays`` / ``folder`` / a dataset plugin: height = width every image is
            resized to (a multiple of 4); None keeps the images' own size.
        batch_size: Images in the one minibatch (zero-cost-nas: 64; NASWOT paper: 128).
    """

    datasets: ClassVar[tuple[str, ...]] = (*DATASETS, *USER_DATASETS)

    type: Literal["proxy"] = "proxy"
    proxies: tuple[str, ...] = PROXIES
    data_dir: str | None = None
    dataset_params: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    batch_size: int = 64
    objective: tuple[str, ...] = ("synflow",)

    def __post_init__(self) -> None:
        if not self.proxies:
            raise ValueError("proxies: give at least one of " + ", ".join(PROXIES))
        for name in self.proxies:
            if name not in PROXIES:
                raise ValueError(f"proxies: {name!r} is not one of {', '.join(PROXIES)}")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 2:
            raise ValueError(f"batch_size: must be an int >= 2, got {self.batch_size!r}")
        super().__post_init__()

    def objective_metrics(self) -> tuple[str, ...]:
        return (*self.proxies, *COST_METRICS)

    def report_metrics(self) -> tuple[str, ...]:
        return self.objective_metrics()


class ProxyEvaluator(BaseEvaluator):
    """Scores a cell by zero-cost proxies of its network at initialisation.

    The network is initialised from ``candidate.seed``; the minibatch is the same for every
    candidate (drawn once from the training split with :data:`natsray.datasets.SPLIT_SEED`),
    so scores depend on the cell and its seed only. ``synflow`` alone needs no dataset.
    ``cost_s`` is the seconds spent computing the proxies.
    """

    Config = ProxyConfig
    cheap = False

    def __init__(self, config: ProxyConfig, shared: object = None) -> None:
        super().__init__(config, shared)
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self) -> None:
        """Pick device and threads; load the dataset and draw the minibatch."""
        config: ProxyConfig = self.config
        torch.set_num_threads(config.threads or actor_threads())
        self.device = resolve_device(config.device)
        data = None
        # the user's own data says its classes and size only when read (for synflow too)
        if config.dataset not in DATASETS or not set(config.proxies) <= {"synflow"}:
            data = load_dataset(
                config.dataset,
                config.data_dir,
                digits_size=config.digits_size,
                image_size=config.image_size,
                params=config.dataset_params,
            )
            self.num_classes, size = data.num_classes, data.input_size
        else:
            self.num_classes, size = dataset_shape(config.dataset, config.digits_size)
        self.meter = CostMeter(config, self.device, shape=(self.num_classes, size))
        if set(config.proxies) <= {"synflow"}:
            images = torch.zeros(config.batch_size, 3, size, size, device=self.device)
            self.batch = (images, torch.zeros(config.batch_size, dtype=torch.long, device=self.device))
            return
        generator = torch.Generator().manual_seed(SPLIT_SEED)
        self.batch = next(
            data.batches(data.train, config.batch_size, generator=generator, device=self.device)
        )

    def score(self, candidate: Candidate) -> Score:
        """Compute the configured proxies (and requested costs) of ``candidate.arch``."""
        if self.batch is None:
            self.setup()
        config: ProxyConfig = self.config
        start = time.perf_counter()
        model = seeded_model(
            candidate.arch, candidate.seed, C=config.C, N=config.N, num_classes=self.num_classes
        )
        values = compute_proxies(model.to(self.device), *self.batch, config.proxies)
        seconds = time.perf_counter() - start
        values.update(self.meter.measure(candidate.arch, candidate.seed, config.wanted & set(COST_METRICS)))
        objectives = {name: values[name] for name in config.objective_names}
        return Score(objectives=objectives, metrics=values, cost_s=seconds)
