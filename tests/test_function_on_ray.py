"""``type: function`` on 2 Ray actors: a user's package reached through ``ray.runtime_env.working_dir``,
a SIGKILLed actor replaced with nothing lost, and a function that imports on the driver but not on
the actors failing fast with one line naming the module."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from natsray.cli import main
from natsray.engine.checkpoint import read_journal
from natsray.search_space import Arch

pytestmark = pytest.mark.ray

SCORING = """
import os
import signal
from pathlib import Path


def crash_once(arch, context):
    marker = Path(context.params["marker"])
    if context.candidate_id == context.params["crash_on"] and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)  # the actor dies mid-evaluation
    convs = sum(op.startswith("nor_conv") for op in arch.ops)
    in_working_dir = Path("marker.txt").is_file()
    return {"score": convs + context.seed % 1000 / 1000, "cwd_is_working_dir": float(in_working_dir)}
"""


def score_of(record: dict[str, Any]) -> float:
    arch = Arch.from_str(record["arch"])
    return sum(op.startswith("nor_conv") for op in arch.ops) + record["seed"] % 1000 / 1000


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A user's project directory (package ``userproj``), shipped to the actors as Ray's working_dir;
    the driver imports it from the same directory."""
    import ray

    root = tmp_path_factory.mktemp("project")
    (root / "userproj").mkdir()
    (root / "userproj" / "__init__.py").write_text("")
    (root / "userproj" / "scoring.py").write_text(textwrap.dedent(SCORING))
    (root / "marker.txt").write_text("the working_dir is the actors' current directory\n")
    ray.init(address="local", num_cpus=2, include_dashboard=False, runtime_env={"working_dir": str(root)})
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        ray.shutdown()


def write_yaml(path: Path, function: str, project: Path, **evaluator: Any) -> Path:
    data = {
        "seed": 4,
        "strategy": {"name": "regularized_evolution", "population": 4, "sample_size": 2},
        "evaluator": {"type": "function", "function": function, **evaluator},
        "budget": {"evaluations": 10},
        "resources": {"actors": 2, "cpus_per_actor": 1},
        "ray": {"runtime_env": {"working_dir": str(project)}},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_users_function_on_two_actors_survives_a_sigkilled_actor(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "crashed"
    config = write_yaml(
        tmp_path / "x.yaml",
        "userproj.scoring:crash_once",
        project,
        params={"marker": str(marker), "crash_on": 3},
    )
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert marker.exists()  # the actor was killed once
    records = read_journal(tmp_path / "run" / "evaluations.jsonl")
    assert sorted(r["candidate_id"] for r in records) == list(range(10))  # nothing lost, nothing twice
    assert all(r["status"] == "ok" for r in records)
    assert [r["objectives"]["score"] for r in records] == [score_of(r) for r in records]
    assert all(r["metrics"]["cwd_is_working_dir"] == 1.0 for r in records)
    crashed = next(r for r in records if r["candidate_id"] == 3)
    assert crashed.get("attempts") == 1
    assert len({r["worker"] for r in records}) == 3  # two actors + the replacement


@pytest.fixture
def driver_only(tmp_path: Path) -> Iterator[Path]:
    """A package importable in the driver only (added to its sys.path after Ray started)."""
    (tmp_path / "driveronly").mkdir()
    (tmp_path / "driveronly" / "__init__.py").write_text("")
    (tmp_path / "driveronly" / "scoring.py").write_text(
        "def convs(arch, context):\n    return {'score': 1.0}\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.startswith("driveronly")]:
            del sys.modules[name]


def test_a_function_not_importable_on_the_actors_fails_fast_with_one_line(
    project: Path, driver_only: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_yaml(tmp_path / "x.yaml", "driveronly.scoring:convs", project)
    assert main(["validate", str(config)]) == 0  # it imports on the driver
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "natsray: error: evaluator.function: 'driveronly.scoring:convs': no module named 'driveronly' "
        "on this Ray worker (imported on the driver; ship it with ray.runtime_env working_dir / "
        "py_modules, or install it where the actors run)\n"
    )


def test_a_callable_whose_module_the_actors_lack_fails_fast_with_one_line(
    project: Path, driver_only: Path, tmp_path: Path
) -> None:
    from driveronly.scoring import convs  # pickled by reference: the actors must import its module

    import natsray
    from natsray.evaluators import EvaluatorError

    config = {"strategy": {"name": "random"}, "budget": {"evaluations": 4}, "resources": {"actors": 2}}
    with pytest.raises(EvaluatorError) as caught:
        natsray.run(config, evaluator=convs, out=tmp_path / "run", progress=False)
    assert str(caught.value) == (
        "evaluator.function: driveronly.scoring.convs cannot be loaded on this Ray worker: no module named "
        "'driveronly' here (ship it with ray.runtime_env working_dir / py_modules, or install it)"
    )


def test_context_device_is_cuda_on_an_actor_given_a_gpu(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    pytest.importorskip("xautodl")
    request.getfixturevalue("project")  # the module's Ray, started only when there is a GPU to test
    import natsray

    def where(arch: Arch, context: Any) -> dict[str, float]:
        on_gpu = next(context.model.parameters()).is_cuda
        return {"score": 1.0, "cuda": float(context.device == "cuda" and on_gpu)}

    config = {
        "strategy": {"name": "random"},
        "evaluator": {"C": 4, "N": 1},
        "budget": {"evaluations": 2},
        "resources": {"actors": 1, "gpus_per_actor": 1},
    }
    run = natsray.run(config, evaluator=where, out=tmp_path / "run", progress=False)
    assert run.evaluations["metric.cuda"].tolist() == [1.0, 1.0]
