"""Training at scale on CPU: actor vs plain loop, 1 vs 2 actors, engine share, threads, memory.

Four measurements on a fresh local Ray with ``--cpus`` CPUs (default 2), one CPU per actor, and a
fifth, (e), of the whole command:

(a) throughput: training images/s of the training evaluator inside a Ray actor against a plain
    torch loop (same network, data, batches, SGD + cosine, threads) in an identical actor,
    alternated ``--repeats`` times side by side; the ratio of medians is reported.
(b) scaling: wall time of a ``--candidates``-candidate random search on digits with 1 and 2 actors
    (Ray started beforehand, so start-up is excluded; actor setup included), in engine mode
    ``--mode``; parallel efficiency ``T1 / (2 T2)``, on the run's wall time and on its span
    (first evaluation start to last finish, from the journal: actor start-up excluded); the
    engine's share of wall time = the driver process's CPU seconds during the run / its wall
    seconds; and where the run's wall time went (``phases``): the driver's dataset preparation
    + ``ray.put`` (``prepare_s``; the actors start meanwhile), waiting for the actors to be set
    up (``actors_s``), the ``ray.wait`` loop (``loop_s``) and the finishing step (actor
    shutdown, last checkpoint and summary: ``finish_s``). ``--workload quickstart`` (default)
    trains the quickstart's network (``configs/quickstart.yaml``: digits 8 px, C=8, N=1, batch
    64, 3 epochs, all 1,000 training images); ``small`` the lighter setting of (a), (c), (d)
    (16 px, 256 images, 1 epoch).
(c) threads: ``torch.get_num_threads()`` inside each actor against the CPUs Ray assigned it.
(d) memory: RSS / PSS / USS (``/proc/<pid>/smaps_rollup``) of each actor holding the dataset
    from the object store, with 1 and 2 actors, and of actors reading their own copy.
(e) the whole command: ``natsray run configs/quickstart.yaml`` with ``strategy={name: random}``,
    ``--candidates`` evaluations and 1 or 2 actors (the quickstart's engine mode, ``ordered``;
    ``--mode`` and ``--workload`` are (b)'s), each a new process that starts and stops its own
    local Ray, timed from here around the process; ``--pairs`` pairs, each pair's order
    alternated (1 then 2 actors, then 2 then 1). Parallel efficiency ``T1 / (2 T2)`` of the
    medians; per command also the run's own ``wall_seconds`` (``summary.json``: Ray's start and the
    search), the rest of the command (``outside_run_s``: Python and natsray's imports, the config and
    pre-flight, the CSV and plots, Ray's stop, the exit), the span of its evaluations (first start to
    last finish) and their summed training. No Ray of this script's runs meanwhile.

Prints a table and writes ``benchmarks/results/training_scale.json``::

    python benchmarks/training_scale.py --candidates 40 --repeats 3
    python benchmarks/training_scale.py --only search --mode ordered
    python benchmarks/training_scale.py --only command --candidates 40 --pairs 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import ray
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
# Ray's workers inherit the environment, as under `natsray run` (a runtime_env would start
# every worker afresh for it, a start-up cost `natsray run` does not pay).
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

from timed_command import run_timed  # noqa: E402

from natsray.config import (  # noqa: E402
    BudgetConfig,
    EngineConfig,
    ExperimentConfig,
    OutputConfig,
    ResourcesConfig,
)
from natsray.engine import runner  # noqa: E402
from natsray.engine.checkpoint import read_journal  # noqa: E402
from natsray.engine.runner import run_experiment  # noqa: E402
from natsray.evaluators.costs import seeded_model  # noqa: E402
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator  # noqa: E402
from natsray.records import Candidate  # noqa: E402
from natsray.search_space import Arch  # noqa: E402
from natsray.strategies.random_search import RandomSearchConfig  # noqa: E402

ARCH = Arch.from_str(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
)


def _memory(pid: int) -> dict[str, float]:
    """``rss``, ``pss``, ``uss`` (private) of a process in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields["Rss"], "pss": fields["Pss"], "uss": uss}


@ray.remote(num_cpus=1)
class Trainer:
    """One actor: the training evaluator and a plain loop over the same data, side by side."""

    def __init__(self, config: TrainingConfig, shared: object) -> None:
        self.evaluator = TrainingEvaluator(config, shared)
        self.evaluator.setup()

    def probe(self) -> dict[str, float]:
        assigned = ray.get_runtime_context().get_assigned_resources().get("CPU")
        pid = os.getpid()
        return {"pid": pid, "threads": torch.get_num_threads(), "cpus": assigned, **_memory(pid)}

    def evaluator_images_per_s(self, seed: int) -> float:
        (result,) = self.evaluator.evaluate([Candidate(0, ARCH, seed=seed)])
        config = self.evaluator.config
        return config.epochs * len(self.evaluator.train_split) / result.metrics["train_time"]

    def plain_images_per_s(self, seed: int) -> float:
        """The same training as a plain torch loop: model, SGD (Nesterov) + cosine, same batches."""
        config, data = self.evaluator.config, self.evaluator.data
        split = self.evaluator.train_split
        model = seeded_model(ARCH, seed, C=config.C, N=config.N, num_classes=data.num_classes)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
            weight_decay=config.weight_decay,
        )  # fmt: skip
        generator = torch.Generator().manual_seed(seed)
        total = config.epochs * math.ceil(len(split) / config.batch_size)
        step = 0
        start = time.perf_counter()
        for _ in range(config.epochs):
            model.train()
            for images, labels in data.batches(split, config.batch_size, generator=generator, augment=True):
                for group in optimizer.param_groups:
                    group["lr"] = 0.5 * config.lr * (1.0 + math.cos(math.pi * step / total))
                logits = model(images)
                loss = F.cross_entropy(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                float(loss.detach()), int((logits.detach().argmax(1) == labels).sum())  # same host syncs
        return config.epochs * len(split) / (time.perf_counter() - start)


def throughput(config: TrainingConfig, repeats: int) -> dict[str, object]:
    trainer = Trainer.remote(config, ray.put(TrainingEvaluator.prepare_shared(config)))
    ray.get(trainer.evaluator_images_per_s.remote(0))  # warm-up
    plain, actor = [], []
    for seed in range(repeats):
        plain.append(ray.get(trainer.plain_images_per_s.remote(seed)))
        actor.append(ray.get(trainer.evaluator_images_per_s.remote(seed)))
    ray.kill(trainer)
    ratio = statistics.median(actor) / statistics.median(plain)
    return {"plain_images_per_s": plain, "evaluator_images_per_s": actor, "ratio_of_medians": ratio}


PHASES: list[tuple[str, float]] = []
"""``(event, perf_counter)`` marks of the run being measured, set by the wrappers below."""


def _marked(owner: object, name: str, before: str, after: str) -> None:
    """Wrap ``owner.name`` to mark ``before`` / ``after`` around each call (benchmark only)."""
    original = getattr(owner, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        PHASES.append((before, time.perf_counter()))
        try:
            return original(*args, **kwargs)
        finally:
            PHASES.append((after, time.perf_counter()))

    setattr(owner, name, wrapper)


_marked(runner._ActorPool, "start", "setup_start", "actors_ready")
_marked(runner, "_loop", "loop_start", "loop_end")


def _phases(start: float, end: float) -> dict[str, float]:
    marks = dict(PHASES)
    return {
        "prepare_s": marks["setup_start"] - start,
        "actors_s": marks["actors_ready"] - marks["setup_start"],
        "loop_s": marks["loop_end"] - marks["loop_start"],
        "finish_s": end - marks["loop_end"],
    }


def search(
    config: TrainingConfig, candidates: int, actors: int, directory: Path, mode: str = "async"
) -> dict[str, float]:
    experiment = ExperimentConfig(
        strategy=RandomSearchConfig(),
        evaluator=config,
        budget=BudgetConfig(evaluations=candidates),
        seed=0,
        resources=ResourcesConfig(actors=actors, cpus_per_actor=1),
        engine=EngineConfig(mode=mode),
        output=OutputConfig(progress=False),
    )
    PHASES.clear()
    cpu, start = time.process_time(), time.perf_counter()
    run_experiment(experiment, directory)
    end = time.perf_counter()
    cpu, wall = time.process_time() - cpu, end - start
    records = read_journal(directory / "evaluations.jsonl")
    busy = sum(r["wall_s"] for r in records)
    span = max(r["finish_time"] for r in records) - min(r["start_time"] for r in records)
    return {
        "span_s": span,
        "actors": actors,
        "wall_s": wall,
        "driver_cpu_s": cpu,
        "engine_share": cpu / wall,
        "actor_utilisation": busy / (actors * wall),
        "training_s": busy,
        "phases": _phases(start, end),
    }


def memory(config: TrainingConfig) -> list[dict[str, object]]:
    rows = []
    ref = ray.put(TrainingEvaluator.prepare_shared(config))
    for actors in (1, 2):
        for mode, shared in (("object store", ref), ("own copy", None)):
            trainers = [Trainer.remote(config, shared) for _ in range(actors)]
            probes = ray.get([t.probe.remote() for t in trainers])
            for trainer in trainers:
                ray.kill(trainer)
            rows.append({"actors": actors, "dataset": mode, "per_actor": probes})
    return rows


def command(candidates: int, actors: int, directory: Path) -> dict[str, float]:
    """Time one whole ``natsray run`` of the quickstart config with random search, from outside."""
    argv = [
        sys.executable, "-m", "natsray", "run", str(ROOT / "configs" / "quickstart.yaml"),
        "--set", "strategy={name: random}", "--set", f"budget.evaluations={candidates}",
        "--set", f"resources.actors={actors}", "--out", str(directory), "--no-progress",
    ]  # fmt: skip
    _, wall = run_timed(argv, f"training_scale: (e) natsray run with {actors} actor(s)", cwd=ROOT)
    run_wall = json.loads((directory / "summary.json").read_text())["wall_seconds"]
    records = read_journal(directory / "evaluations.jsonl")
    span = max(r["finish_time"] for r in records) - min(r["start_time"] for r in records)
    return {"actors": actors, "wall_s": wall, "run_wall_s": run_wall, "outside_run_s": wall - run_wall,
            "span_s": span, "training_s": sum(r["wall_s"] for r in records)}  # fmt: skip


BUSY = 1.25
"""(e) warns when the 2-actor commands' trainings took this many times the 1-actor ones' in all (with 10
candidates or more): two actors then got less than two cores (another job), and the efficiency says more
about the machine."""


def whole_command(candidates: int, pairs: int) -> dict[str, object]:
    """(e): ``pairs`` alternated pairs of 1- and 2-actor commands (rows in the order they ran, each with
    its start time); efficiency of the medians."""
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(pairs):
            order = (1, 2) if pair % 2 == 0 else (2, 1)
            for n in order:
                started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                rows.append({"started": started, **command(candidates, n, Path(tmp) / f"p{pair}a{n}")})
    one, two = (statistics.median(r["wall_s"] for r in rows if r["actors"] == n) for n in (1, 2))
    training = [statistics.median(r["training_s"] for r in rows if r["actors"] == n) for n in (1, 2)]
    return {
        "candidates": candidates,
        "pairs": pairs,
        "commands": rows,
        "median_wall_s": {"1": one, "2": two},
        "parallel_efficiency": one / (2 * two),
        "training_ratio_2_to_1": training[1] / training[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--mode", choices=["async", "ordered"], default="async", help="engine mode of (b)")
    parser.add_argument(
        "--workload", choices=["quickstart", "small"], default="quickstart", help="(b)'s network"
    )
    parser.add_argument("--pairs", type=int, default=2, help="(e): alternated pairs of commands")
    parser.add_argument(
        "--only",
        choices=["all", "search", "command"],
        default="all",
        help="search: (b) only; command: (e) only",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training_scale.json"))
    args = parser.parse_args()
    base = TrainingConfig(C=8, N=1, digits_size=16, batch_size=64, train_subset=256, epochs=1)
    quickstart = TrainingConfig(
        C=8,
        N=1,
        digits_size=8,
        batch_size=64,
        epochs=3,
        device="cpu",
        report=("test_accuracy", "params", "flops"),
    )
    workload = quickstart if args.workload == "quickstart" else base
    results: dict[str, object] = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "ray": ray.__version__,
        "load_average_before": os.getloadavg(),
    }
    if args.only != "command":
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            fields = ("dataset", "digits_size", "C", "N", "batch_size", "train_subset", "epochs")
            results["config"] = {"arch": ARCH.to_str(), **{k: getattr(base, k) for k in fields}}
            results["search_config"] = {"workload": args.workload, "mode": args.mode, **{
                k: getattr(workload, k)
                for k in ("digits_size", "C", "N", "batch_size", "train_subset", "epochs")
            }}  # fmt: skip
            if args.only == "all":
                results["memory"] = memory(replace(base, digits_size=32))
                results["throughput"] = throughput(replace(base, train_subset=None, epochs=2), args.repeats)
            with tempfile.TemporaryDirectory() as tmp:
                results["search"] = [
                    search(workload, args.candidates, n, Path(tmp) / f"a{n}", args.mode) for n in (1, 2)
                ]
        finally:
            ray.shutdown()
        one, two = results["search"]
        results["parallel_efficiency"] = one["wall_s"] / (2 * two["wall_s"])
        results["parallel_efficiency_span"] = one["span_s"] / (2 * two["span_s"])
    if args.only in ("all", "command"):
        results["command"] = whole_command(args.candidates, args.pairs)
    results["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    _print(results, args)


def _print(results: dict, args: argparse.Namespace) -> None:
    print(f"load average {results['load_average_before'][0]:.2f} before, "
          f"{results['load_average_after'][0]:.2f} after")  # fmt: skip
    if "throughput" in results:
        t = results["throughput"]
        plain = statistics.median(t["plain_images_per_s"])
        actor = statistics.median(t["evaluator_images_per_s"])
        print(f"(a) images/s, median of {args.repeats}: plain loop {plain:.0f}, evaluator {actor:.0f}, "
              f"ratio {t['ratio_of_medians']:.3f}")  # fmt: skip
    if "command" in results:
        _print_command(results["command"], args)
    if "search" not in results:
        return
    print(f"(b) {args.candidates} candidates ({args.workload}, {args.mode})  actors  wall s  driver CPU s  "
          "engine share  actor utilisation  prepare s  actors s  loop s  finish s")  # fmt: skip
    for row in results["search"]:
        p = row["phases"]
        print(f"{'':>38}{row['actors']:>7}{row['wall_s']:>8.1f}{row['driver_cpu_s']:>14.2f}"
              f"{100 * row['engine_share']:>13.2f}%{100 * row['actor_utilisation']:>19.1f}%"
              f"{p['prepare_s']:>11.2f}{p['actors_s']:>10.2f}{p['loop_s']:>8.2f}"
              f"{p['finish_s']:>10.2f}")  # fmt: skip
    one, two = results["search"]
    print(f"    parallel efficiency T1/(2 T2) = {results['parallel_efficiency']:.3f} (wall), "
          f"{results['parallel_efficiency_span']:.3f} (first start to last finish: "
          f"{one['span_s']:.1f} s vs {two['span_s']:.1f} s)")  # fmt: skip
    if "memory" not in results:
        return
    print("(c)+(d) actors  dataset        threads/CPUs       RSS MiB       PSS MiB       USS MiB")
    for row in results["memory"]:
        probes = row["per_actor"]
        threads = ", ".join(f"{p['threads']}/{p['cpus']:g}" for p in probes)
        cols = [", ".join(f"{p[k]:.1f}" for p in probes) for k in ("rss", "pss", "uss")]
        print(f"{row['actors']:>13}  {row['dataset']:<13}{threads:>13}" + "".join(f"{c:>14}" for c in cols))


def _print_command(whole: dict, args: argparse.Namespace) -> None:
    print(
        f"(e) the whole command: natsray run configs/quickstart.yaml, random, {args.candidates} evaluations"
    )
    print(f"{'':>4}actors  command s  run's wall_seconds  outside the run s  span s  training s")
    for row in whole["commands"]:
        print(f"{'':>4}{row['actors']:>6}{row['wall_s']:>11.2f}{row['run_wall_s']:>20.2f}"
              f"{row['outside_run_s']:>19.2f}{row['span_s']:>8.2f}{row['training_s']:>12.2f}")  # fmt: skip
    medians = whole["median_wall_s"]
    print(f"    parallel efficiency T1/(2 T2) = {whole['parallel_efficiency']:.3f} of the medians "
          f"({medians['1']:.2f} s vs {medians['2']:.2f} s)")  # fmt: skip
    ratio = whole["training_ratio_2_to_1"]
    if (
        ratio > BUSY and args.candidates >= 10
    ):  # with fewer, each actor's first (slower) candidate weighs much
        print(f"    note: with 2 actors the candidates' training took {ratio:.2f} times as long in all as "
              "with 1: the 2 actors did not get 2 cores (another job?); measure again idle")  # fmt: skip


if __name__ == "__main__":
    main()
