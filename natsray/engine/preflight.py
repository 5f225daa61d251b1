"""Pre-flight: everything a run would refuse, checked in the driver before Ray starts or a file is made.

``natsray validate`` and ``natsray run`` call :func:`preflight` with the same config, so whatever the
run refuses, ``validate`` refuses first, with the same line, and neither creates anything:

- ``engine`` against the evaluator (:func:`~natsray.config.check_engine`);
- a local Ray run's actors against this machine's CPUs and GPUs
  (:func:`~natsray.engine.cluster.check_resources`; a cluster's are checked when the run joins it);
- the evaluator's inputs as its actors will read them: its ``prepare_shared`` (a table and its
  ``extra_csv``, a dataset), then :meth:`~natsray.evaluators.BaseEvaluator.preflight` (an archive
  opened, one probe evaluation per budget of a cheap evaluator);
- every rung of a multi-fidelity strategy (a strategy config with ``budgets``, e.g.
  ``asha_evolution``): a budget the evaluator does not serve (NATS-Bench hp 200 of a metric the
  dataset lacks, an hp that is no NATS schedule) is refused, not failed at every promotion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from natsray.config import ExperimentConfig, check_engine
from natsray.engine.cluster import check_resources, local_nodes
from natsray.evaluators import EvaluatorError, evaluator_class

__all__ = ["Preflight", "preflight"]


@dataclass
class Preflight:
    """What :func:`preflight` found.

    Attributes:
        shared: The evaluator's ``prepare_shared`` result, for the run to reuse (None: nothing).
        warnings: One line each, to print before the run starts (e.g. how much of the space an
            ``extra_csv`` covers).
        machine: ``"(fits this machine (2 CPU, 0 GPU))"`` for a local Ray run, else ``""``.
    """

    shared: Any = None
    warnings: list[str] = field(default_factory=list)
    machine: str = ""


def strategy_budgets(config: ExperimentConfig) -> tuple[int, ...]:
    """The budgets (rungs) a multi-fidelity strategy will ask the evaluator for; () for the others."""
    budgets = getattr(config.strategy, "budgets", None)
    return tuple(budgets) if budgets else ()


def preflight(config: ExperimentConfig, *, address: str | None = None, prepare: bool = True) -> Preflight:
    """Check ``config`` as the run will see it, without starting Ray or writing a file.

    Args:
        config: The parsed config, paths resolved.
        address: The cluster the run will join (``--address``); None with ``config.ray.address``
            and ``RAY_ADDRESS`` unset means a local Ray, whose resources are checked here.
        prepare: Read the evaluator's inputs (``prepare_shared`` and its pre-flight); False checks
            only the engine and resources.

    Returns:
        The evaluator's shared inputs and the warnings to print.

    Raises:
        ValueError: one line (a :class:`~natsray.evaluators.EvaluatorError` or ``ConfigError``
            among them) naming the field, file or value and what was expected.
    """
    import os

    evaluator_cls = evaluator_class(config.evaluator.type)
    check_engine(config.engine, evaluator_cls, config.evaluator)
    result = Preflight()
    local_ray = config.engine.mode != "simulated" and not config.engine.in_process
    if local_ray and not (address or config.ray.address or os.environ.get("RAY_ADDRESS")):
        nodes = local_nodes(config.resources.num_cpus)
        reason = check_resources(config, nodes, "this machine")
        if reason:
            raise EvaluatorError(f"{reason}; for a cluster: --address HOST:PORT")
        result.machine = f"(fits this machine ({nodes[0]['CPU']:g} CPU, {nodes[0]['GPU']:g} GPU))"
    if not prepare:
        return result
    result.shared = evaluator_cls.prepare_shared(config.evaluator)
    result.warnings = list(
        evaluator_cls.preflight(config.evaluator, result.shared, strategy_budgets(config)) or []
    )
    return result
