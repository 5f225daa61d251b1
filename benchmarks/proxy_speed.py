"""Seconds per cell of the zero-cost proxies: one proxy at a time vs natsray's shared pass.

For the same random cells, network (C=16, N=5) and minibatch as ``configs/proxy-search.yaml``
(digits at 32x32, batch 64), it times, interleaved cell by cell on one torch thread:

* ``separate``: natsray's code before issue 11: one network copy and one forward per proxy
  (snip and grad_norm sharing one), NASWOT's kernel as two float64 matmuls per ReLU;
* ``shared``: :func:`natsray.evaluators.proxies.compute_proxies` (two copies, two forwards);
* ``evaluator``: what one evaluation costs in ``proxy-search.yaml``: building the seeded network,
  the shared proxies, params and FLOPs (:class:`ProxyEvaluator.score`).

    python benchmarks/proxy_speed.py --cells 10
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from natsray.evaluators.costs import seeded_model
from natsray.evaluators.proxies import (
    PROXIES,
    ProxyConfig,
    ProxyEvaluator,
    _grad_norm_of,
    _loss_backward,
    _snip_of,
    compute_proxies,
    jacov,
    synflow,
)
from natsray.records import Candidate
from natsray.search_space import random_sample


def _naswot_before(model: torch.nn.Module, images: torch.Tensor) -> float:
    """NASWOT as natsray computed it before issue 11 (for the 'separate' timing)."""
    net = copy.deepcopy(model)
    n = len(images)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(module, inputs, output) -> None:
        code = (inputs[0].reshape(n, -1) > 0).double()
        kernel.add_(code @ code.T + (1.0 - code) @ (1.0 - code).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.ReLU)]
    with torch.no_grad():
        net(images)
    for handle in handles:
        handle.remove()
    sign, logdet = np.linalg.slogdet(kernel.numpy())
    return float(logdet) if sign > 0 else float("-inf")


def _separate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    net = _loss_backward(model, images, labels)
    return {
        "snip": _snip_of(net),
        "grad_norm": _grad_norm_of(net),
        "jacov": jacov(model, images, labels),
        "naswot": _naswot_before(model, images),
        "synflow": synflow(model, images, labels),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/proxy_speed.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = ProxyConfig(
        dataset="digits", C=16, N=5, batch_size=64, proxies=PROXIES, objective=("synflow",),
        report=("params", "flops"), threads=args.threads, device="cpu",
    )  # fmt: skip
    evaluator = ProxyEvaluator(config)
    evaluator.setup()
    images, labels = evaluator.batch
    rng = random.Random(args.seed)
    cells = [random_sample(rng) for _ in range(args.cells + 1)]
    times: dict[str, list[float]] = {"separate": [], "shared": [], "evaluator": []}
    for n, arch in enumerate(cells):
        model = seeded_model(arch, n, C=16, N=5, num_classes=10)
        start = time.perf_counter()
        old = _separate(model, images, labels)
        separate = time.perf_counter() - start
        start = time.perf_counter()
        new = compute_proxies(model, images, labels, PROXIES)
        shared = time.perf_counter() - start
        start = time.perf_counter()
        evaluator.score(Candidate(n, arch, seed=n))
        whole = time.perf_counter() - start
        if n == 0:
            continue  # warm-up cell: first-call allocations
        assert all(old[k] == new[k] or abs(old[k] - new[k]) <= 1e-9 * abs(old[k]) for k in PROXIES), (
            old,
            new,
        )
        for key, value in (("separate", separate), ("shared", shared), ("evaluator", whole)):
            times[key].append(value)
    summary = {
        key: {"mean_s": statistics.mean(v), "median_s": statistics.median(v)} for key, v in times.items()
    }
    ratio = summary["separate"]["median_s"] / summary["shared"]["median_s"]
    print(f"{args.cells} cells, C=16 N=5, digits 32x32, batch 64, {args.threads} torch thread(s)")
    print(f"{'path':<10} {'median s/cell':>14} {'mean s/cell':>12}")
    for key, row in summary.items():
        print(f"{key:<10} {row['median_s']:>14.3f} {row['mean_s']:>12.3f}")
    print(f"separate / shared (median): {ratio:.2f}x")
    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "cells": args.cells,
        "threads": args.threads,
        "seconds": times,
        "summary": summary,
        "separate_over_shared": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
