"""One SGD training step captured as a CUDA graph (``evaluator.cuda_graphs``).

A NATS network is small: on a current GPU one training step's kernels take less time to run
than the host takes to launch them (one Python thread issues some thousand kernels a step), so
the GPU waits on the host. A CUDA graph records the whole step once (forward, cross-entropy,
backward, the SGD update and the running sums) and replays it with one launch.

It follows PyTorch's "whole network capture" recipe (`CUDA Graphs` in PyTorch's CUDA semantics
notes): a few eager steps on a side stream first (cuDNN and cuBLAS set up their workspaces
there), then the capture, then ``replay`` with each batch copied into the captured input
tensors. Every step is a real training step: the eager ones train the network as the replays
do.

The update is SGD as :class:`torch.optim.SGD` computes it (weight decay added to the gradient,
momentum buffer ``b = m * b + g``, Nesterov ``g + m * b``), written with ``torch._foreach``
ops and a learning rate held in a device tensor, so that the per-step cosine schedule changes
the captured step's rate without a new capture. The momentum buffers are the optimizer's own
``state[p]["momentum_buffer"]`` tensors, so checkpoints keep torch's format. Each step equals
the eager one to floating-point rounding (``p - (lr * g)`` rather than ``p + (-lr) * g``); over a
training the differences grow as between two nondeterministic GPU runs. A graphed training is
bit-reproducible run to run with ``evaluator.deterministic``.

Batches of another size (the last, partial batch of an epoch) run the same step eagerly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GraphedSGDStep"]

WARMUP_STEPS = 3
"""Eager steps on a side stream before the capture (PyTorch's recipe uses 3)."""


@functools.cache
def _side_stream(device: torch.device) -> torch.cuda.Stream:
    """One side stream per device and process for the eager steps.

    cuBLAS keeps a workspace (about 65 MiB on an H200) for every stream it has run on; a new stream
    per candidate (torch hands out 32 in turn) held 2.1 GiB of them after 30 candidates.
    """
    return torch.cuda.Stream(device)


class GraphedSGDStep:
    """Trains ``model`` one batch at a time, replaying a captured CUDA graph for full batches.

    Args:
        model: The network, on its device, in training mode.
        optimizer: Its :class:`torch.optim.SGD` (``dampening`` 0, ``maximize`` false); only
            its param groups' ``lr`` entries and momentum buffers are used.
        batch_size: The size of the batches that are captured and replayed.
        momentum: SGD momentum (0: no buffer).
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay added to the gradient.
        autocast: A context-manager factory for the forward pass (``torch.autocast`` with
            ``cache_enabled=False`` under a capture, or a null context).
        capture: Capture and replay (CUDA); False runs every step eagerly, the same update (for
            CPU tests of the update's arithmetic).

    Attributes:
        loss_sum: float64 device scalar, the sum of ``loss * batch size`` since :meth:`reset_sums`.
        correct: int64 device scalar, correct top-1 predictions since :meth:`reset_sums`.
        captured: Whether the graph has been captured.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.SGD,
        *,
        batch_size: int,
        momentum: float,
        nesterov: bool,
        weight_decay: float,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
        capture: bool,
    ) -> None:
        self.model, self.optimizer, self.batch_size = model, optimizer, batch_size
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.autocast, self.capture = autocast, capture
        self.params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        device = self.params[0].device
        self.buffers: list[torch.Tensor] = []
        if momentum:
            for p in self.params:  # torch's own state entries: checkpoints keep their format
                state = optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    # b = m * 0 + g = g: torch's first step (b = clone(g)), with a fixed address
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.buffers.append(state["momentum_buffer"])
        self.lr = torch.zeros((), dtype=torch.float32, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.eager_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_images: torch.Tensor | None = None
        self.static_labels: torch.Tensor | None = None
        self.stream = _side_stream(device) if capture else None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def reset_sums(self) -> None:
        """Zero the running sums in place (the captured step adds to these very tensors)."""
        self.loss_sum.zero_()
        self.correct.zero_()

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, lr: float) -> None:
        """One step on ``images`` (N, C, H, W) and ``labels`` (N,) at learning rate ``lr``.

        Raises:
            RuntimeError: one line, when the capture fails (an op of the model that a CUDA graph
                cannot hold); set ``evaluator.cuda_graphs: false`` for such a model.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr  # the optimizer's state_dict (checkpoints) says the rate in use
        self.lr.fill_(lr)
        full = images.shape[0] == self.batch_size
        if self.graph is not None and full:
            self.static_images.copy_(images)
            self.static_labels.copy_(labels)
            self.graph.replay()
        elif not self.capture or not full or self.eager_steps < WARMUP_STEPS:
            self._eager(images, labels)
            self.eager_steps += full
        else:
            self._capture(images, labels)
            self.graph.replay()  # capturing runs nothing: this step is the first replay

    def _eager(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if self.stream is None:
            self._step(images, labels)
            return
        current = torch.cuda.current_stream(self.stream.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            self._step(images, labels)
        current.wait_stream(self.stream)

    def _capture(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        torch.cuda.synchronize(self.stream.device)
        self.static_images, self.static_labels = images.clone(), labels.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._step(self.static_images, self.static_labels)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeError(
                f"cuda_graphs: capturing the training step failed ({first}); "
                "set evaluator.cuda_graphs: false for this model"
            ) from None
        self.graph = graph

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        with self.autocast():
            logits = self.model(images)
            loss = F.cross_entropy(logits, labels)
        loss.backward()
        with torch.no_grad():
            self._update()
            self.loss_sum.add_(loss.detach().double() * labels.shape[0])
            self.correct.add_((logits.detach().argmax(1) == labels).sum())
        for p in self.params:
            p.grad = None

    def _update(self) -> None:
        """``torch.optim.SGD``'s foreach update, with the rate from :attr:`lr` (a device tensor)."""
        used = [i for i, p in enumerate(self.params) if p.grad is not None]  # torch skips the others
        params = [self.params[i] for i in used]
        grads = [self.params[i].grad for i in used]
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum:
            buffers = [self.buffers[i] for i in used]
            torch._foreach_mul_(buffers, self.momentum)
            torch._foreach_add_(buffers, grads)
            grads = torch._foreach_add(grads, buffers, alpha=self.momentum) if self.nesterov else buffers
        torch._foreach_sub_(params, torch._foreach_mul(grads, self.lr))
