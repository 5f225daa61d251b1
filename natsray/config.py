"""The experiment config: a tree of frozen dataclasses loaded from YAML.

Top-level sections: ``seed``, ``search_space``, ``strategy``, ``evaluator``,
``objectives``, ``budget``, ``resources``, ``engine``, ``ray``, ``output``. The
``strategy`` and ``evaluator`` sections are parsed into the ``Config`` dataclass of the
class they select (by ``strategy.name`` / ``evaluator.type``), so each component is
handed only its own section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from natsray.records import Objective

__all__ = [
    "BudgetConfig",
    "EngineConfig",
    "ExperimentConfig",
    "OutputConfig",
    "RayConfig",
    "ResourcesConfig",
    "SearchSpaceConfig",
]


@dataclass(frozen=True)
class SearchSpaceConfig:
    """``search_space``: which space, and how duplicates are treated.

    Attributes:
        name: Only ``nats-tss``.
        dedup: ``arch`` never evaluates the same cell twice, ``canonical`` never the same
            canonical cell twice (cells computing the same function), ``none`` re-evaluates.
    """

    name: Literal["nats-tss"] = "nats-tss"
    dedup: Literal["none", "arch", "canonical"] = "arch"


@dataclass(frozen=True)
class BudgetConfig:
    """``budget``: the run stops cleanly when ANY given limit is reached (at least one is required)."""

    evaluations: int | None = None
    wall_seconds: float | None = None
    simulated_seconds: float | None = None

    def __post_init__(self) -> None:
        limits = {
            "evaluations": self.evaluations,
            "wall_seconds": self.wall_seconds,
            "simulated_seconds": self.simulated_seconds,
        }
        if all(value is None for value in limits.values()):
            raise ValueError("give at least one of evaluations, wall_seconds, simulated_seconds")
        for name, value in limits.items():
            if value is not None and value <= 0:
                raise ValueError(f"{name}: must be > 0, got {value}")


@dataclass(frozen=True)
class ResourcesConfig:
    """``resources``: the evaluator actors.

    Attributes:
        actors: Number of evaluator actors.
        cpus_per_actor: Ray ``num_cpus`` of each actor (also its torch thread count).
        gpus_per_actor: Ray ``num_gpus`` of each actor (fractions allowed).
        num_cpus: CPUs of a Ray instance started locally (None: all cores).
    """

    actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ValueError(f"actors: must be >= 1, got {self.actors}")
        if self.cpus_per_actor < 0 or self.gpus_per_actor < 0:
            raise ValueError("cpus_per_actor / gpus_per_actor: must be >= 0")


@dataclass(frozen=True)
class EngineConfig:
    """``engine``: how the driver loop schedules work.

    Attributes:
        mode: ``async`` (steady state, tell results as they arrive), ``ordered`` (tell in
            candidate-id order: reproducible for any number of actors), ``simulated``
            (no Ray: simulate ``simulated_workers`` asynchronous workers with an event clock
            driven by each evaluation's benchmark cost).
        simulated_workers: Worker count of ``simulated`` mode.
        batch_size: Candidates per Ray call; ``None`` sizes it automatically for cheap
            evaluators (1 for training).
        max_retries: Re-submissions of a candidate whose actor died, before it is
            recorded as failed.
        in_process: Evaluate in the driver process without Ray (cheap evaluators only).
    """

    mode: Literal["async", "ordered", "simulated"] = "async"
    simulated_workers: int = 1
    batch_size: int | None = None
    max_retries: int = 2
    in_process: bool = False


@dataclass(frozen=True)
class RayConfig:
    """``ray``: where to run. ``address`` None starts a local Ray (or joins ``RAY_ADDRESS``)."""

    address: str | None = None
    runtime_env: dict[str, Any] | None = None
    dashboard_host: str = "127.0.0.1"
    include_dashboard: bool = False


@dataclass(frozen=True)
class OutputConfig:
    """``output``: the run directory and how often the search state is checkpointed."""

    dir: str = "runs/run"
    checkpoint_every: int = 25
    checkpoint_seconds: float = 30.0
    progress: bool = True


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment.

    ``strategy`` is an instance of the selected strategy class's ``Config`` and
    ``evaluator`` of the selected evaluator class's ``Config``. ``objectives`` defaults
    to the evaluator's ``objective`` field.
    """

    strategy: Any
    evaluator: Any
    budget: BudgetConfig
    seed: int = 0
    search_space: SearchSpaceConfig = field(default_factory=SearchSpaceConfig)
    objectives: tuple[Objective, ...] = ()
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
