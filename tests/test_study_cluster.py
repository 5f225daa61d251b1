"""A sweep on a 2-node ``ray.cluster_utils.Cluster``: run tasks execute on both nodes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_study import base, table  # noqa: F401 - the module fixture

from natsray.study.grid import plan_runs, sweep_from_config
from natsray.study.store import stored_runs
from natsray.study.sweep import STATUS_FILE, run_sweep


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address)
    nodes.wait_for_nodes()
    _start_a_worker_on_each_node()
    yield
    ray.shutdown()
    nodes.shutdown()


def _start_a_worker_on_each_node() -> None:
    """Both nodes registered is not both nodes ready: on a loaded machine the head's scheduler can
    learn of the second node's CPU, and that node start its worker, only after six short runs are
    done on the head. A task pinned to each node waits for both, so the test measures the sweep's
    placement, not Ray's start-up."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def node_id() -> str:
        return ray.get_runtime_context().get_node_id()

    ids = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
    pinned = [
        node_id.options(scheduling_strategy=NodeAffinitySchedulingStrategy(i, soft=False)).remote()
        for i in ids
    ]
    assert sorted(ray.get(pinned, timeout=180)) == ids


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_runs_on_both_nodes(cluster: None, table: Path, tmp_path: Path) -> None:  # noqa: F811
    plan = sweep_from_config(base(table, evaluations=300), seeds="0-5")
    assert plan is not None
    outcome = run_sweep(plan_runs(plan, tmp_path), tmp_path, progress=False)
    assert [run.status for run in outcome.runs] == ["done"] * 6
    nodes = {json.loads(line)["node"] for line in (tmp_path / STATUS_FILE).read_text().splitlines()}
    assert len(nodes) == 2
    assert sorted(stored_runs(tmp_path)) == [f"seed-{seed}" for seed in range(6)]  # each in the store once
    assert all(run.summary["evaluations"] == 300 for run in stored_runs(tmp_path).values())
