"""Training throughput: a natsray candidate against a plain PyTorch loop, per candidate and per device.

(a) per candidate: training images/s of ``TrainingEvaluator`` (one candidate, ``--epochs``
    epochs, dataset resident on the device) against a plain PyTorch loop training the same
    network (same initialisation, same data, batch size, SGD with Nesterov momentum + per-step
    cosine schedule, random crop + flip on the device, running sums read once per epoch) in the
    same process, alternated ``--repeats`` times side by side after one warm-up each; the ratio
    of the medians and the pairwise ratios are reported. Also the natsray candidate's epoch time.
(b) per device (``--concurrent K ...``): ``K`` Ray actors share the device (``num_gpus = 1/K``
    on a GPU, one CPU each on CPU: ``resources.gpus_per_actor`` as a run sets it), each trains
    one candidate at the same moment (after a warm-up training); aggregate images/s =
    ``K * images * epochs / wall`` (wall from the common start to the last finish).

Data: ``--data digits`` (scikit-learn's real 8x8 digits, upsampled to ``--size``) or
``--data synthetic`` (CIFAR-shaped: ``--images`` random ``uint8`` 3x32x32 images, 10 random
labels; a throughput measurement only, its accuracies mean nothing).

Presets (any option given explicitly overrides them):

* ``--preset cpu`` (default): the quickstart network (digits 8 px, C=8, N=1, batch 64, 3
  epochs), 1 thread, no concurrency: seconds on a laptop core.
* ``--preset gpu``: NATS-Bench's median cell by recorded cifar10-valid hp-200 epoch time
  (``train-per-time`` 9.09 s, cell index 8073) at NATS size (C=16, N=5), synthetic
  CIFAR-shaped 25,000 images (one cifar10-valid epoch), batch 256, 1 epoch, device cuda,
  ``--concurrent 1 2 4 8``: a few minutes on one GPU.

Prints a table and writes JSON (``--out``)::

    python benchmarks/training_throughput.py
    python benchmarks/training_throughput.py --preset gpu \
        --out benchmarks/results/training_throughput_gpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Ray's workers inherit the environment, as under `natsray run` (a runtime_env would start
# every worker afresh for it, a start-up cost `natsray run` does not pay).
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

from natsray.datasets import ImageDataset, ImageSplit  # noqa: E402
from natsray.evaluators import training  # noqa: E402
from natsray.evaluators.costs import seeded_model  # noqa: E402
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator  # noqa: E402
from natsray.records import Candidate  # noqa: E402
from natsray.search_space import Arch  # noqa: E402

MEDIAN_NATS_CELL = "|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|"
"""Cell 8073: the median of NATS-Bench's cifar10-valid hp-200 ``train-per-time`` (9.0856 s per epoch)."""
QUICKSTART_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
GPU_FLAGS = ("amp", "channels_last", "cudnn_benchmark", "cuda_graphs", "deterministic")
"""Options of the natsray candidate only: the ratio to the plain fp32 loop is then their speed-up."""
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"data": "digits", "size": 8, "images": 1000, "C": 8, "N": 1, "batch_size": 64, "epochs": 3,
            "device": "cpu", "threads": 1, "arch": QUICKSTART_CELL, "concurrent": [], "repeats": 3},
    "gpu": {"data": "synthetic", "size": 32, "images": 25000, "C": 16, "N": 5, "batch_size": 256, "epochs": 1,
            "device": "cuda", "threads": None, "arch": MEDIAN_NATS_CELL, "concurrent": [1, 2, 4, 8],
            "repeats": 3},
}  # fmt: skip


def make_data(kind: str, size: int, images: int) -> ImageDataset:
    """Real digits, or ``images`` synthetic CIFAR-shaped images (seeded, 10 classes, NATS CIFAR-10 stats)."""
    if kind == "digits":
        from natsray.datasets import load_dataset

        return load_dataset("digits", digits_size=size)
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> ImageSplit:
        pixels = torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)
        return ImageSplit(pixels, torch.randint(0, 10, (n,), generator=generator))

    return ImageDataset(
        name="cifar10", train=split(images), valid=split(max(1, images // 10)), test=split(1),
        num_classes=10, input_size=size, mean=(0.491, 0.482, 0.447), std=(0.247, 0.244, 0.262),
        crop_padding=size // 8, flip=True, split_source="synthetic (random uint8), for throughput only",
    )  # fmt: skip


CPU_SECONDS: list[float] = []
"""Process CPU seconds of each natsray training (its training loop only), appended by :func:`_timed_train`."""
_train = training._TrainingRun.train


def _timed_train(self: Any) -> tuple[float, float]:
    cpu = time.process_time()
    try:
        return _train(self)
    finally:
        CPU_SECONDS.append(time.process_time() - cpu)


training._TrainingRun.train = _timed_train  # CPU time of natsray's training loop, as for the plain one


def plain_loop(
    config: TrainingConfig, data: ImageDataset, arch: Arch, seed: int, device: torch.device
) -> tuple[float, float]:
    """``(wall, process CPU)`` seconds of a plain PyTorch training of ``arch`` on ``data.train``."""
    model = seeded_model(arch, seed, C=config.C, N=config.N, num_classes=data.num_classes).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    images, labels = data.train.images, data.train.labels
    n, _, h, w = images.shape
    pad = data.crop_padding
    mean = torch.tensor(data.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, 3, 1, 1)
    rows, channels = torch.arange(h, device=device), torch.arange(3, device=device).view(1, 3, 1, 1)
    generator = torch.Generator(device=device).manual_seed(seed)
    total, step = config.epochs * math.ceil(n / config.batch_size), 0
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(config.epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        order = torch.randperm(n, device=device, generator=generator)
        for first in range(0, n, config.batch_size):
            index = order[first : first + config.batch_size]
            x, y = images[index], labels[index]
            m = len(index)
            if data.flip:
                flip = torch.rand(m, device=device, generator=generator) < 0.5
                x = torch.where(flip.view(m, 1, 1, 1), x.flip(3), x)
            if pad:
                dy, dx = torch.randint(0, 2 * pad + 1, (2, m, 1), device=device, generator=generator)
                x = F.pad(x, (pad, pad, pad, pad))[
                    torch.arange(m, device=device).view(m, 1, 1, 1), channels,
                    (dy + rows).view(m, 1, h, 1), (dx + rows[:w]).view(m, 1, 1, w),
                ]  # fmt: skip
            x = (x.float() / 255.0 - mean) / std
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.detach() * m
            correct += (logits.detach().argmax(1) == y).sum()
        float(loss_sum), int(correct)  # read once per epoch, as natsray does
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def natsray_candidate(evaluator: TrainingEvaluator, arch: Arch, seed: int) -> float:
    """Training seconds (``train_time``) of one natsray candidate."""
    (result,) = evaluator.evaluate([Candidate(seed, arch, seed=seed)])
    if not result.ok:
        raise SystemExit(f"training_throughput: the candidate failed: {result.error}")
    return result.metrics["train_time"]


def per_candidate(config: TrainingConfig, shared: dict, arch: Arch, repeats: int) -> dict[str, Any]:
    evaluator = TrainingEvaluator(config, shared)
    evaluator.setup()
    data, device = evaluator.data, evaluator.device  # resident on the device: the plain loop gets the same
    images = config.epochs * len(data.train)
    natsray_candidate(evaluator, arch, 0), plain_loop(config, data, arch, 0, device)  # warm-up
    CPU_SECONDS.clear()
    plain, ours, plain_cpu, ours_cpu = [], [], [], []
    for seed in range(1, repeats + 1):
        wall, cpu = plain_loop(config, data, arch, seed, device)
        plain.append(images / wall)
        plain_cpu.append(images / cpu)
        ours.append(images / natsray_candidate(evaluator, arch, seed))
        ours_cpu.append(images / CPU_SECONDS[-1])
    return {
        "images_per_training": images,
        "plain_images_per_s": plain,
        "natsray_images_per_s": ours,
        "ratio_of_medians": statistics.median(ours) / statistics.median(plain),
        "pairwise_ratios": [a / b for a, b in zip(ours, plain, strict=True)],
        "plain_images_per_cpu_s": plain_cpu,
        "natsray_images_per_cpu_s": ours_cpu,
        "cpu_ratio_of_medians": statistics.median(ours_cpu) / statistics.median(plain_cpu),
        "natsray_epoch_s_median": len(data.train) / statistics.median(ours),
    }


def per_device(config: TrainingConfig, shared: dict, arch: Arch, counts: list[int]) -> list[dict[str, Any]]:
    """Aggregate images/s of ``k`` concurrent trainings on one device, for each ``k`` in ``counts``."""
    import ray

    gpu = config.device == "cuda"
    ray.init(num_cpus=max(counts) if not gpu else None, include_dashboard=False, log_to_driver=False)

    class Trainer:
        def __init__(self, config: TrainingConfig, shared: dict) -> None:
            self.evaluator = TrainingEvaluator(config, shared)
            self.evaluator.setup()
            natsray_candidate(self.evaluator, arch, 0)  # warm-up: CUDA context, kernels

        def train(self, seed: int) -> tuple[float, float, float]:
            start = time.time()
            seconds = natsray_candidate(self.evaluator, arch, seed)
            return start, time.time(), seconds

    rows = []
    try:
        ref = ray.put(shared)
        for k in counts:
            options = {"num_gpus": 1 / k, "num_cpus": 1} if gpu else {"num_cpus": 1}
            actors = [ray.remote(Trainer).options(**options).remote(config, ref) for _ in range(k)]
            ray.get([a.__ray_ready__.remote() for a in actors])
            submitted = time.time()
            times = ray.get([a.train.remote(seed) for seed, a in enumerate(actors, start=1)])
            wall = max(end for _, end, _ in times) - submitted
            images = config.epochs * len(shared["train"][1])
            rows.append({
                "concurrent": k,
                "wall_s": wall,
                "aggregate_images_per_s": k * images / wall,
                "per_candidate_images_per_s": [images / s for _, _, s in times],
            })  # fmt: skip
            for actor in actors:
                ray.kill(actor)
    finally:
        ray.shutdown()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--data", choices=["digits", "synthetic"])
    parser.add_argument("--size", type=int, help="image height = width (digits: 8, 16 or 32)")
    parser.add_argument("--images", type=int, help="training images (synthetic; digits: a subset)")
    parser.add_argument("--C", type=int)
    parser.add_argument("--N", type=int)
    parser.add_argument("--batch-size", dest="batch_size", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int)
    parser.add_argument("--arch", help="the cell trained (NATS string)")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--concurrent", type=int, nargs="*", help="concurrent trainings on one device (Ray)")
    for option in GPU_FLAGS:
        flag = f"--{option.replace('_', '-')}"
        helps = f"the natsray candidate's evaluator.{option}: true (the plain loop stays fp32)"
        parser.add_argument(flag, dest=option, action="store_true", help=helps)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training_throughput.json"))
    args = parser.parse_args(argv)
    settings = dict(PRESETS[args.preset])
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    arch = Arch.from_str(settings["arch"])
    try:
        config = TrainingConfig(
            dataset="cifar10" if settings["data"] == "synthetic" else "digits", digits_size=settings["size"],
            C=settings["C"], N=settings["N"], batch_size=settings["batch_size"], epochs=settings["epochs"],
            device=settings["device"], threads=settings["threads"], augment=True,
            **{option: getattr(args, option) for option in GPU_FLAGS},
        )  # fmt: skip
    except ValueError as exc:  # a GPU option with --device cpu, a bad --batch-size: one line
        parser.exit(2, f"training_throughput: {exc} (the GPU options need --preset gpu or --device cuda)\n")
    if settings["device"] == "cuda" and not torch.cuda.is_available():
        no_gpu = "--preset gpu / --device cuda needs a CUDA GPU; this machine has none"
        parser.exit(2, f"training_throughput: {no_gpu}\n")
    settings.update({option: getattr(args, option) for option in GPU_FLAGS})
    data = make_data(settings["data"], settings["size"], settings["images"])
    if settings["data"] == "digits" and settings["images"] < len(data.train):
        data = replace(data, train=data.train.subset(np.arange(settings["images"])))
    shared = data.to_shared()
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "device": torch.cuda.get_device_name() if settings["device"] == "cuda" else "cpu",
        "torch": torch.__version__,
        "settings": settings,
        "data_note": "synthetic CIFAR-shaped tensors" if settings["data"] == "synthetic" else "real digits",
        "load_average_before": load_before,
    }
    started = time.perf_counter()
    results["per_candidate"] = per_candidate(config, shared, arch, settings["repeats"])
    if settings["concurrent"]:
        results["per_device"] = per_device(config, shared, arch, settings["concurrent"])
    results["seconds"] = time.perf_counter() - started
    results["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    _print(results)
    return results


def _print(results: dict[str, Any]) -> None:
    s, c = results["settings"], results["per_candidate"]
    options = ", ".join(option for option in GPU_FLAGS if s.get(option)) or "fp32, no options"
    print(f"{s['data']} ({results['data_note']}) {s['images']} images {s['size']}px, C={s['C']} N={s['N']}, "
          f"batch {s['batch_size']}, {s['epochs']} epochs, {results['device']} (natsray: {options}), "
          f"load average {results['load_average_before'][0]:.2f} -> "
          f"{results['load_average_after'][0]:.2f}")  # fmt: skip
    print("per candidate   images/s: plain loop   natsray   ratio   images/CPU s: plain   natsray   ratio")
    rows = zip(c["plain_images_per_s"], c["natsray_images_per_s"], c["plain_images_per_cpu_s"],
               c["natsray_images_per_cpu_s"], strict=True)  # fmt: skip
    for plain, ours, plain_cpu, ours_cpu in rows:
        print(f"{'':16}{plain:>20.0f}{ours:>10.0f}{ours / plain:>8.3f}{plain_cpu:>21.0f}{ours_cpu:>10.0f}"
              f"{ours_cpu / plain_cpu:>8.3f}")  # fmt: skip
    print(
        f"ratio of medians {c['ratio_of_medians']:.3f} (wall), {c['cpu_ratio_of_medians']:.3f} (CPU); "
        f"natsray epoch {c['natsray_epoch_s_median']:.3f} s"
    )
    for row in results.get("per_device", []):
        print(f"{row['concurrent']} concurrent on one device: aggregate {row['aggregate_images_per_s']:.0f} "
              f"images/s (wall {row['wall_s']:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
