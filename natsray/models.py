"""Networks of NATS-TSS cells: building, params/FLOPs, weights I/O.

The network is NATS-Bench's own: xautodl's ``infer.tiny`` TinyNetwork (stem, three stages of
``N`` cells separated by residual reduction blocks, global pooling, linear classifier), built
through :func:`xautodl.models.get_cell_based_tiny_net` exactly as NATS-Bench built it.

xautodl is imported lazily: importing this module never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from natsray.search_space import Arch

__all__ = ["TinyNet", "build_model", "count_params_flops", "load_weights", "save_weights"]

_XAUTODL_HINT = "natsray.models needs xautodl: install it with `pip install --no-deps xautodl==1.0.0`"


def _xautodl() -> tuple[Any, Any]:
    """``(get_cell_based_tiny_net, get_model_infos)`` from xautodl, or a one-line ImportError."""
    try:
        from xautodl.models import get_cell_based_tiny_net
        from xautodl.utils import get_model_infos
    except ImportError as exc:
        raise ImportError(f"{_XAUTODL_HINT} ({exc})") from None
    return get_cell_based_tiny_net, get_model_infos


def _xautodl_net(arch: Arch, C: int, N: int, num_classes: int) -> nn.Module:
    for name, value in (("C", C), ("N", N), ("num_classes", num_classes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"model {name} must be a positive int, got {value!r}")
    get_cell_based_tiny_net, _ = _xautodl()
    config = {"name": "infer.tiny", "C": C, "N": N, "arch_str": str(arch), "num_classes": num_classes}
    return get_cell_based_tiny_net(config)


class TinyNet(nn.Module):
    """A NATS TinyNetwork whose forward returns the logits only.

    xautodl's network returns ``(pooled_features, logits)``; this wrapper keeps it as
    :attr:`net` and returns ``logits``. Its ``state_dict`` keys are the xautodl keys with the
    prefix ``"net."``: load NATS-Bench weights with ``model.net.load_state_dict(sd)``.

    Attributes:
        net: The xautodl TinyNetwork.
        arch: The cell every cell of the network uses.
    """

    def __init__(self, net: nn.Module, arch: Arch) -> None:
        super().__init__()
        self.net = net
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(batch, num_classes)``."""
        _, logits = self.net(x)
        return logits


def build_model(arch: Arch, *, C: int = 16, N: int = 5, num_classes: int = 10) -> TinyNet:
    """The NATS-Bench network of ``arch`` (NATS used ``C=16, N=5``), freshly initialised.

    Initialisation draws from torch's global RNG; seed it with ``torch.manual_seed`` first
    for reproducible weights.

    Raises:
        ImportError: one line, when xautodl is not installed.
        ValueError: when ``C``, ``N`` or ``num_classes`` is not a positive int.
    """
    return TinyNet(_xautodl_net(arch, C, N, num_classes), arch)


def count_params_flops(
    arch: Arch, *, C: int = 16, N: int = 5, num_classes: int = 10, input_size: int = 32
) -> tuple[float, float]:
    """``(params in millions, FLOPs in MFLOPs)``, computed exactly as NATS-Bench did.

    Uses xautodl's ``get_model_infos(net, (1, 3, input_size, input_size))`` on a fresh
    network; NATS used ``input_size=32`` for CIFAR and ``16`` for ImageNet16-120. The
    global torch RNG state is left untouched.
    """
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise ValueError(f"input_size must be a positive int, got {input_size!r}")
    _, get_model_infos = _xautodl()
    with torch.random.fork_rng(devices=[]):
        net = _xautodl_net(arch, C, N, num_classes)
        flops, params = get_model_infos(net, (1, 3, input_size, input_size))
    return float(params), float(flops)


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write ``model.state_dict()`` to ``path`` (torch format), creating parent dirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights written by :func:`save_weights` into ``model`` (strict) and return it.

    Raises:
        FileNotFoundError: one line naming ``path`` when it does not exist.
        ValueError: one line when the file is not a state dict or does not fit ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"weights file {str(path)!r} is not a torch state dict: {first}") from None
    if not isinstance(state, dict):
        raise ValueError(f"weights file {str(path)!r} holds a {type(state).__name__}, expected a state dict")
    missing = sorted(set(model.state_dict()) ^ set(state))
    if missing:
        raise ValueError(
            f"weights file {str(path)!r} does not fit the model: {len(missing)} mismatched keys "
            f"(first {missing[0]!r})"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise ValueError(f"weights file {str(path)!r} does not fit the model: {detail.strip()}") from None
    return model
