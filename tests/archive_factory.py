"""Writes small NATS-Bench TSS archives with KNOWN numbers, in nats_bench's exact on-disk format.

``meta.pickle.pbz2`` lists all 15,625 arch strings in a seeded shuffle (so NATS indices
differ from :attr:`Arch.code`, as in the real benchmark); records
``{index:06d}.pickle.pbz2`` = ``{'12': ArchResults state, '200': ...}`` are written for the
first ``n_records`` indices only. Every number is a function of the cell's index below, so
tests can check each query path against exact values:

* trials: hp '12' has seeds [111, 777] on cifar10-valid when ``index % 3 == 0`` (else [111]),
  hp '200' has 3 / 2 / 1 seeds (777, 888, 999) for ``index % 3`` = 0 / 1 / 2;
* accuracies and losses exist at every epoch when ``index`` is even, else at the final epoch only;
* times exist for every epoch; ``latency`` optional; ``missing_valid_200`` drops the hp '200'
  ``x-valid`` set of cifar100 / ImageNet16-120 for the given indices (like generated archives);
* ``planted_200_cost`` adds the given offset to ``params`` / ``flops`` / ``latency`` of every
  hp '200' record (NATS-Bench issue #36: some hp-200 records disagree with hp-12).
"""

from __future__ import annotations

import bz2
import pickle
import random
from collections.abc import Collection
from pathlib import Path
from typing import Any

from natsray.search_space import all_archs

__all__ = [
    "EVAL_SETS",
    "RUNS",
    "accuracy",
    "eval_epoch_time",
    "flops",
    "latency",
    "loss",
    "nats_bench_metrics",
    "params",
    "seeds_of",
    "train_epoch_time",
    "write_archive",
]

RUNS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
_SPLITS = ("train", "x-valid", "x-test", "ori-test")
_EPOCHS = {"12": 12, "200": 200}
_CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def seeds_of(index: int, run: str, hp: str) -> list[int]:
    """The trial seeds of one run."""
    if hp == "12":
        return [111, 777] if index % 3 == 0 and run == "cifar10-valid" else [111]
    return [777, 888, 999][: 3 - index % 3]


def _code(index: int, run: str, hp: str, seed: int, split: str) -> float:
    return (
        (index % 50)
        + 0.1 * RUNS.index(run)
        + 0.01 * _SPLITS.index(split)
        + 0.001 * (seed % 10) ** 2  # not linear: a 3-trial mean differs from every trial
        + (5.0 if hp == "200" else 0.0)
    )


def accuracy(index: int, run: str, hp: str, seed: int, split: str, epoch: int) -> float:
    """Top-1 accuracy of a trial on a split ("train" or an eval set) after ``epoch``."""
    return 40.0 + _code(index, run, hp, seed, split) + 1e-4 * epoch


def loss(index: int, run: str, hp: str, seed: int, split: str, epoch: int) -> float:
    """Loss of a trial on a split after ``epoch``."""
    return 3.0 - _code(index, run, hp, seed, split) / 100 - 1e-5 * epoch


def train_epoch_time(index: int, run: str, hp: str, seed: int, epoch: int) -> float:
    """Seconds of training in ``epoch``."""
    return 2.0 + index % 7 + 0.5 * RUNS.index(run) + 0.25 * (seed % 10) + 0.01 * epoch + (hp == "200")


def eval_epoch_time(index: int, run: str, hp: str, seed: int, split: str, epoch: int) -> float:
    """Seconds of evaluating a split after ``epoch``."""
    return 0.5 + 0.1 * (index % 5) + 0.05 * _SPLITS.index(split) + 0.02 * (seed % 10) + 0.001 * epoch


def params(index: int, run: str) -> float:
    """Parameters (M) of the cell's network for a run."""
    return 0.1 + 0.01 * (index % 11) + 0.001 * RUNS.index(run)


def flops(index: int, run: str) -> float:
    """FLOPs (M)."""
    return 10.0 + index % 13 + 0.5 * RUNS.index(run)


def latency(index: int, run: str) -> float:
    """Latency (s)."""
    return 0.01 + 0.001 * (index % 3) + 0.0001 * RUNS.index(run)


def _trial(
    index: int,
    arch_str: str,
    run: str,
    hp: str,
    seed: int,
    *,
    drop_valid: bool,
    with_latency: bool,
    cost_offset: float = 0.0,
) -> dict:
    epochs = _EPOCHS[hp]
    scored = range(epochs) if index % 2 == 0 else [epochs - 1]
    eval_sets = [name for name in EVAL_SETS[run] if not (drop_valid and name == "x-valid")]
    eval_acc1es, eval_losses, eval_times = {}, {}, {}
    for name in eval_sets:
        for epoch in scored:
            eval_acc1es[f"{name}@{epoch}"] = accuracy(index, run, hp, seed, name, epoch)
            eval_losses[f"{name}@{epoch}"] = loss(index, run, hp, seed, name, epoch)
        for epoch in range(epochs):
            eval_times[f"{name}@{epoch}"] = eval_epoch_time(index, run, hp, seed, name, epoch)
    return {
        "name": run,
        "train_acc1es": {epoch: accuracy(index, run, hp, seed, "train", epoch) for epoch in scored},
        "train_acc5es": None,
        "train_losses": {epoch: loss(index, run, hp, seed, "train", epoch) for epoch in scored},
        "train_times": {epoch: train_epoch_time(index, run, hp, seed, epoch) for epoch in range(epochs)},
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": arch_str, "class_num": _CLASSES[run]},
        "params": params(index, run) + cost_offset,
        "flop": flops(index, run) + cost_offset,
        "seed": f"{seed:04d}",
        "epochs": epochs,
        "latency": [latency(index, run) + cost_offset] if with_latency else None,
        "eval_names": eval_sets,
        "eval_acc1es": eval_acc1es,
        "eval_times": eval_times,
        "eval_losses": eval_losses,
        "net_state_dict": None,
    }


def write_archive(
    root: str | Path,
    n_records: int = 40,
    *,
    shuffle_seed: int = 0,
    missing_valid_200: Collection[int] = (),
    with_latency: bool = True,
    planted_200_cost: float = 0.0,
) -> list[str]:
    """Write an archive directory; returns the meta arch strings (NATS index order)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    archs = [arch.to_str() for arch in all_archs()]
    random.Random(shuffle_seed).shuffle(archs)
    with bz2.open(root / "meta.pickle.pbz2", "wb") as handle:
        pickle.dump({"meta_archs": archs, "total_archs": len(archs)}, handle, protocol=4)
    for index in range(n_records):
        record = {}
        for hp in _EPOCHS:
            all_results, dataset_seed = {}, {}
            for run in RUNS:
                drop = hp == "200" and index in missing_valid_200 and run in ("cifar100", "ImageNet16-120")
                dataset_seed[run] = seeds_of(index, run, hp)
                for seed in dataset_seed[run]:
                    all_results[(run, seed)] = _trial(
                        index,
                        archs[index],
                        run,
                        hp,
                        seed,
                        drop_valid=drop,
                        with_latency=with_latency,
                        cost_offset=planted_200_cost if hp == "200" else 0.0,
                    )
            record[hp] = {
                "arch_index": index,
                "arch_str": archs[index],
                "all_results": all_results,
                "dataset_seed": dataset_seed,
                "clear_net_done": True,
            }
        with bz2.open(root / f"{index:06d}.pickle.pbz2", "wb") as handle:
            pickle.dump(record, handle, protocol=4)
    return archs


def nats_bench_metrics(api: Any, index: int, dataset: str, hp: str) -> dict[str, Any]:
    """The oracle: natsray's metric names read straight from a nats_bench API (seed means).

    ``valid_*`` / ``train_*`` come from ``cifar10-valid`` for cifar10 (the run NATS-Bench's
    ``simulate_train_eval`` uses), ``test_*`` from the dataset's own run.
    """
    valid = api.get_more_info(
        index, "cifar10-valid" if dataset == "cifar10" else dataset, hp=hp, is_random=False
    )
    test = api.get_more_info(index, dataset, hp=hp, is_random=False)
    costs = api.get_cost_info(index, dataset, hp=hp)
    return {
        "valid_accuracy": valid.get("valid-accuracy"),
        "valid_loss": valid.get("valid-loss"),
        "test_accuracy": test["test-accuracy"],
        "test_loss": test["test-loss"],
        "train_accuracy": valid["train-accuracy"],
        "train_loss": valid["train-loss"],
        "train_time": valid["train-all-time"],
        "epoch_time": valid["train-per-time"],
        "params": costs["params"],
        "flops": costs["flops"],
        "latency": costs["latency"],
    }


def write_full_table(directory: Path) -> Path:
    """``directory/full.npz``: the exported table of a 20-record generated archive, with a record for
    every cell (seeded uniform values where the archive had none), for runs past a few evaluations."""
    import numpy as np

    from natsray.evaluators.table import export_table

    write_archive(directory / "archive", 20)
    path = export_table(directory / "archive", directory / "part.npz", progress=False)
    rng = np.random.default_rng(1)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    for key, values in arrays.items():
        if key.endswith("/seeds"):  # -1 marks an absent trial: every trial is present now
            values[values < 0] = (1000 + np.arange(values.shape[1]))[np.nonzero(values < 0)[1]]
        elif values.dtype.kind == "f":
            missing = np.isnan(values)
            values[missing] = rng.uniform(1.0, 90.0, size=int(missing.sum()))
    arrays["has_record"][:] = True
    np.savez(directory / "full.npz", **arrays)
    return directory / "full.npz"
