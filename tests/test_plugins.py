"""Plugins reached the way a user reaches them: an evaluator class and a strategy class in a package made
in a temp directory (not importable from natsray's tree), named in YAML by import path or by an
entry-point short name, run in-process, on 2 local Ray actors and on a 2-node Ray cluster; a killed
driver resumed to the uninterrupted journal, a killed actor replaced with nothing lost; every bad
plugin name refused at validation in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray_head import Head, clean_env, running_head
from toy_evaluator import trajectory

from natsray.cli import main
from natsray.registry import ImportPathError, import_object

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from natsray.cli import main; sys.exit(main())"]

SCORING = '''
"""An evaluator class of the user's own: conv edges plus a hash of the cell."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from natsray import BaseEvaluator, Candidate, Score


@dataclass(frozen=True)
class EdgeScoreConfig:
    type: str = "labplug.scoring:EdgeScore"
    objective: tuple[str, ...] = ("score",)
    bonus: float = 0.0
    sleep_s: float = 0.0
    kill_on: int | None = None  # SIGKILL the process scoring this candidate id...
    marker: str | None = None  # ...while this file does not exist (then create it)
    bad_on: int = -1  # this candidate id gets a score that is not a number


class EdgeScore(BaseEvaluator):
    Config = EdgeScoreConfig
    cheap = True

    def score(self, candidate: Candidate) -> Score:
        config = self.config
        if config.kill_on == candidate.id and not Path(config.marker).exists():
            Path(config.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        if config.sleep_s:
            time.sleep(config.sleep_s)
        if candidate.id == config.bad_on:
            return Score({"score": "high"}, {}, cost_s=1.0)
        arch = candidate.arch
        convs = sum(op.startswith("nor_conv") for op in arch.ops)
        value = convs + (arch.code * 7919 % 1000) / 10_000 + config.bonus
        return Score({"score": value}, {"plugin_pid": float(os.getpid())}, cost_s=1.0 + convs)


class Unlicensed(EdgeScore):
    cheap = False  # not built in the driver's pre-flight: only on the actors

    def __init__(self, config, shared=None):
        super().__init__(config, shared)
        self.key = {}["licence"]


class NotAnEvaluator:
    pass


class NoConfig(BaseEvaluator):
    def score(self, candidate: Candidate) -> Score:
        return Score({}, {}, 0.0)


class Unfinished(BaseEvaluator):
    Config = EdgeScoreConfig
'''

SEARCH = '''
"""A strategy class of the user's own: mutate the best cell so far."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from natsray import Arch, Candidate, Fitness, Strategy
from natsray.search_space import mutate, random_sample


@dataclass(frozen=True)
class ClimbConfig:
    name: str = "labplug.search:Climb"
    warmup: int = 6


class Climb(Strategy):
    Config = ClimbConfig

    def __init__(self, config: ClimbConfig, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self.best: list[Any] | None = None

    def ask(self) -> Candidate | None:
        if self.best is None or self.next_id < self.config.warmup:
            found, parents = self._novel(lambda: random_sample(self.rng)), ()
        else:
            fitness, parent, arch = self.best
            found, parents = self._novel(lambda: mutate(Arch.from_str(arch), self.rng)), (parent,)
        if found is None:
            return None
        return self._propose(found[0], parents if found[1] else ())

    def tell(self, candidate: Candidate, fitness: Fitness) -> None:
        if fitness is not None and (self.best is None or list(fitness) > self.best[0]):
            self.best = [list(fitness), candidate.id, candidate.arch.to_str()]

    def _state(self) -> dict[str, Any]:
        return {"best": self.best}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
'''


FUNCTIONS = '''
"""A scoring function of the user's own: EdgeScore's score, as a plain function (type: function)."""

import os


def score_cell(arch, context):
    convs = sum(op.startswith("nor_conv") for op in arch.ops)
    return {"score": convs + (arch.code * 7919 % 1000) / 10_000, "plugin_pid": float(os.getpid())}
'''


def experiment(**sections: Any) -> dict[str, Any]:
    """The fixture package's classes by import path; ordered engine, window 4: one trajectory anywhere."""
    config: dict[str, Any] = {
        "seed": 5,
        "strategy": {"name": "labplug.search:Climb"},
        "evaluator": {"type": "labplug.scoring:EdgeScore"},
        "budget": {"evaluations": 30},
        "resources": {"actors": 2, "cpus_per_actor": 0.5, "num_cpus": 2},
        "engine": {"mode": "ordered", "max_in_flight": 4, "batch_size": 1},
        "ray": {"runtime_env": {"working_dir": "."}},
        "output": {"progress": False, "plots": False},
    }
    for name, value in sections.items():
        config[name] = {**config.get(name, {}), **value} if isinstance(value, dict) else value
    return config


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's project directory: the ``labplug`` package, nothing on ``PYTHONPATH``."""
    root = tmp_path_factory.mktemp("project")
    package = root / "labplug"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "scoring.py").write_text(textwrap.dedent(SCORING))
    (package / "search.py").write_text(textwrap.dedent(SEARCH))
    (package / "functions.py").write_text(textwrap.dedent(FUNCTIONS))
    return root


def write(directory: Path, name: str, config: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def natsray(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    """The CLI in a subprocess, as a user runs it: natsray importable, the project directory not."""
    env = dict(env or clean_env())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def error_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr[-3000:])
    return lines[0]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (  # working_dir: . put the directory on the path: the package's own modules are listed
            "evaluator.type=labplug.nothere:X",
            "'labplug.nothere:X': no module named 'labplug.nothere' (package 'labplug' at ",
        ),
        (
            "evaluator.type=labplug.scorng:EdgeScore",
            "no module named 'labplug.scorng' (package 'labplug' at {project}/labplug has: functions, "
            "scoring, search; did you mean 'labplug.scoring'?)",
        ),
        ("evaluator.type=labplug.scoring:Missing", "module 'labplug.scoring' has no attribute 'Missing'"),
        (
            "evaluator.type=labplug.scoring:NotAnEvaluator",
            "evaluator.type: labplug.scoring:NotAnEvaluator is not a BaseEvaluator subclass",
        ),
        ("evaluator.type=labplug.scoring:NoConfig", "labplug.scoring:NoConfig has no Config dataclass"),
        (
            "evaluator.type=labplug.scoring:Unfinished",
            "evaluator.type: labplug.scoring:Unfinished does not implement score (abstract in BaseEvaluator)",
        ),
        ("evaluator.bonsu=1", "evaluator.bonsu: unknown key (did you mean 'bonus'?)"),
        ("evaluator.bonus=high", "evaluator.bonus: expected a number, got 'high'"),
        (
            "strategy.name=labplug.scoring:EdgeScore",
            "strategy.name: labplug.scoring:EdgeScore is not a Strategy",
        ),
        ("strategy.warmpu=2", "strategy.warmpu: unknown key (did you mean 'warmup'?)"),
        ("strategy.name=regularised_evolution", "is not one of regularized_evolution, genetic"),
        ("strategy.name=nomodule.at.all:Thing", "'nomodule.at.all:Thing': no module named 'nomodule'"),
    ],
)
def test_bad_plugins_are_refused_at_validation_in_one_line(
    project: Path, override: str, expected: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.chdir(project)  # working_dir: . is this directory
    path = write(project, "bad.yaml", experiment())
    assert main(["validate", str(path), "--set", override]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"natsray: error: {path}: "), lines
    assert expected.format(project=project) in lines[0] and "current directory" not in lines[0]
    if "did you mean" in expected or "not one of" in expected:
        return
    assert main(["run", str(path), "--set", override, "--out", str(project / "never")]) == 2  # run: the same
    assert capsys.readouterr().err.strip().splitlines() == lines
    assert not (project / "never").exists()


def test_without_working_dir_the_module_is_not_found(project: Path, tmp_path: Path) -> None:
    config = experiment(ray={"runtime_env": None})
    done = natsray("validate", str(write(tmp_path, "x.yaml", config)), cwd=tmp_path)
    assert "strategy.name: 'labplug.search:Climb': no module named 'labplug'" in error_line(done)
    assert "current directory" not in error_line(done)  # run elsewhere: no hint about this directory
    # From the project directory itself, without working_dir: the line says how to make it importable.
    # (The installed `natsray` script, as a user runs it: `python -c` would put the directory on the path.)
    script = Path(sys.executable).with_name("natsray")
    env = {**clean_env(), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [str(script), "validate", str(write(tmp_path, "x.yaml", config))],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert error_line(done).endswith(
        "which is not on the import path: add 'ray: {runtime_env: {working_dir: .}}' to the config "
        "(the driver and the Ray actors then import it from there)"
    )


def test_a_missing_module_gets_a_true_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The current directory is named only when the module is there and the directory is off the path;
    a typo in a submodule of a package that imports lists the package's modules instead."""
    package = tmp_path / "hintlab"
    package.mkdir()
    for name in ("__init__", "hill", "evals", "_private"):
        (package / f"{name}.py").write_text("X = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".")])
    monkeypatch.delitem(sys.modules, "hintlab", raising=False)
    off_path = "which is not on the import path: add 'ray: {runtime_env: {working_dir: .}}'"
    listing = f"package 'hintlab' at {package} has: evals, hill; did you mean 'hintlab.hill'?"
    try:
        with pytest.raises(ImportPathError) as info:
            import_object("hintlab.hill:X")
        assert f"no module named 'hintlab'; it is in the current directory ({tmp_path}), {off_path}" in str(
            info.value
        )
        with pytest.raises(ImportPathError) as info:
            import_object("hintlab.hil:X")  # the package is here, the module is not
        assert str(info.value).startswith(
            f"'hintlab.hil:X': no module named 'hintlab'; 'hintlab' is in the current directory "
            f"({tmp_path}), {off_path}"
        )
        assert str(info.value).endswith(f"; it has no 'hintlab.hil' ({listing})")
        monkeypatch.syspath_prepend(str(tmp_path))
        with pytest.raises(ImportPathError) as info:
            import_object("hintlab.hil:X")
        assert str(info.value) == f"'hintlab.hil:X': no module named 'hintlab.hil' ({listing})"
        assert import_object("hintlab.hill:X") == 1
    finally:
        for name in [name for name in sys.modules if name.partition(".")[0] == "hintlab"]:
            del sys.modules[name]


# --------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def reference(project: Path) -> Path:
    """The in-process run of :func:`experiment`: the trajectory every other run must repeat."""
    config = experiment(engine={"in_process": True}, output={"dir": "runs/in-process"})
    path = write(project, "in-process.yaml", config)
    done = natsray("run", path.name, cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    return project / "runs/in-process"


def test_in_process_run_from_the_project_directory_needs_no_pythonpath(reference: Path) -> None:
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["evaluations"] == 30 and summary["failed"] == 0
    records = [json.loads(line) for line in (reference / "evaluations.jsonl").open()]
    assert len({record["metrics"]["plugin_pid"] for record in records}) == 1  # the driver scored them
    assert all(record["parents"] for record in records if record["candidate_id"] >= 6)  # Climb bred them
    stored = yaml.safe_load((reference / "config.yaml").read_text())
    assert stored["strategy"]["name"] == "labplug.search:Climb"
    assert stored["evaluator"]["type"] == "labplug.scoring:EdgeScore"


@pytest.mark.ray
def test_two_local_ray_actors_get_the_plugin_through_working_dir(project: Path, reference: Path) -> None:
    path = write(project, "actors.yaml", experiment(output={"dir": "runs/actors"}))
    done = natsray("run", path.name, cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (project / "runs/actors/evaluations.jsonl").open()]
    assert len({record["metrics"]["plugin_pid"] for record in records}) == 2  # both actors scored
    assert trajectory(project / "runs/actors") == trajectory(reference)


# --------------------------------------------------------------------------- a 2-node cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    """A token-authenticated head of 1 CPU and a second node of 1 CPU: actors of 1 CPU land one per node."""
    with running_head(tmp_path_factory.mktemp("cluster"), num_cpus=1, nodes=1) as head:
        yield head


def on_cluster(project: Path, name: str, **sections: Any) -> Path:
    """A config whose 2 actors take a whole node each, the package shipped as ``py_modules``."""
    sections = {"ray": {"runtime_env": {"py_modules": ["./labplug"]}}, **sections}
    config = experiment(
        resources={"actors": 2, "cpus_per_actor": 1, "num_cpus": None},
        output={"dir": f"runs/{name}"},
        **sections,
    )
    return write(project, f"{name}.yaml", config)


@pytest.mark.ray
@pytest.mark.slow
def test_on_a_two_node_cluster_the_run_equals_the_in_process_run(
    cluster: Head, project: Path, reference: Path
) -> None:
    path = on_cluster(project, "cluster")
    done = natsray("run", path.name, "--address", cluster.address, cwd=project, env=cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (project / "runs/cluster/evaluations.jsonl").open()]
    assert len({record["metrics"]["plugin_pid"] for record in records}) == 2
    assert trajectory(project / "runs/cluster") == trajectory(reference)


@pytest.mark.ray
@pytest.mark.slow
def test_a_scoring_function_on_a_two_node_cluster_equals_the_in_process_run(
    cluster: Head, project: Path, reference: Path
) -> None:
    # The package's plain function (type: function) with its strategy, shipped as py_modules: both
    # nodes score, and the trajectory is the evaluator class's (same scores) run in the driver.
    path = on_cluster(
        project, "function", evaluator={"type": "function", "function": "labplug.functions:score_cell"}
    )
    done = natsray("run", path.name, "--address", cluster.address, cwd=project, env=cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (project / "runs/function/evaluations.jsonl").open()]
    assert [r["status"] for r in records] == ["ok"] * 30
    assert len({record["metrics"]["plugin_pid"] for record in records}) == 2
    assert trajectory(project / "runs/function") == trajectory(reference)


@pytest.mark.ray
@pytest.mark.slow
def test_driver_sigkill_and_resume_give_the_uninterrupted_journal(
    cluster: Head, project: Path, reference: Path
) -> None:
    path = on_cluster(project, "killed", evaluator={"sleep_s": 0.05})
    env = {**cluster.env, "PYTHONPATH": str(REPO)}
    run_dir = project / "runs/killed"
    command = [*CLI, "run", path.name, "--address", cluster.address]
    process = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    journal = run_dir / "evaluations.jsonl"
    deadline = time.monotonic() + 180
    try:
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= 8):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert 8 <= journal.read_bytes().count(b"\n") < 30  # killed mid-run
    done = natsray("resume", str(run_dir), "--address", cluster.address, cwd=REPO, env=cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert trajectory(run_dir) == trajectory(reference)


@pytest.mark.ray
@pytest.mark.slow
def test_a_sigkilled_actor_is_replaced_and_nothing_is_lost(
    cluster: Head, project: Path, reference: Path
) -> None:
    marker = project / "killed-once"
    path = on_cluster(project, "actor-killed", evaluator={"kill_on": 9, "marker": str(marker)})
    done = natsray("run", path.name, "--address", cluster.address, cwd=project, env=cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.exists()  # an actor really died
    records = [json.loads(line) for line in (project / "runs/actor-killed/evaluations.jsonl").open()]
    assert [r["status"] for r in records] == ["ok"] * 30
    assert "attempts" not in next(r for r in records if r["candidate_id"] == 9)  # cheap: not isolated
    assert len({r["metrics"]["plugin_pid"] for r in records}) == 3  # two actors, one replacement
    assert trajectory(project / "runs/actor-killed") == trajectory(reference)


@pytest.mark.ray
@pytest.mark.slow
def test_a_class_the_actors_cannot_import_fails_fast_in_one_line(cluster: Head, project: Path) -> None:
    # importable on the driver (PYTHONPATH), but nothing ships it to the cluster's nodes
    config = experiment(ray={"runtime_env": None}, resources={"actors": 2, "cpus_per_actor": 1})
    path = write(project.parent, "driver-only.yaml", config)
    env = {**cluster.env, "PYTHONPATH": str(project)}
    done = natsray("run", str(path), "--address", cluster.address, "--out", "x", cwd=project.parent, env=env)
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "natsray: error: evaluator.type: labplug.scoring:EdgeScore: no module named 'labplug' on the Ray "
        "actor's node"
    ), done.stderr[-3000:]
    assert "Traceback" not in done.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_on_actors_a_bad_score_fails_its_candidate_and_a_failing_init_is_one_line(
    cluster: Head, project: Path
) -> None:
    path = on_cluster(project, "bad-score", engine={"mode": "async"}, evaluator={"bad_on": 7})
    done = natsray("run", path.name, "--address", cluster.address, cwd=project, env=cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = {
        r["candidate_id"]: r for r in map(json.loads, (project / "runs/bad-score/evaluations.jsonl").open())
    }
    assert [i for i, r in sorted(records.items()) if r["status"] != "ok"] == [7] and len(records) == 30
    assert records[7]["error"] == (
        "EvaluatorError: labplug.scoring:EdgeScore returned objective 'score' = 'high' (str), "
        "expected a number"
    )
    # __init__ raising on the actors: the user's code failed (exit 1, as in-process), in one line naming it
    line = next(i for i, text in enumerate(textwrap.dedent(SCORING).splitlines(), 1) if "licence" in text)
    path = on_cluster(project, "unlicensed", evaluator={"type": "labplug.scoring:Unlicensed"})
    done = natsray("run", path.name, "--address", cluster.address, cwd=project, env=cluster.env)
    assert (done.returncode, done.stderr.strip().splitlines()[-1]) == (
        1,
        "natsray: failed: EvaluatorSetupError: evaluator labplug.scoring:Unlicensed: __init__ raised "
        f"KeyError: 'licence' (scoring.py:{line}) (NATSRAY_DEBUG=1 shows the traceback)",
    ), done.stderr[-3000:]
    debug = {**cluster.env, "NATSRAY_DEBUG": "1"}
    done = natsray(
        "run", path.name, "--address", cluster.address, "--out", "runs/dbg", cwd=project, env=debug
    )
    assert done.returncode == 1
    assert f'scoring.py", line {line}, in __init__' in done.stderr, done.stderr[
        -3000:
    ]  # the actor's traceback


USER_RAY = """
import sys
import ray
from natsray.config import load_config, resolve_paths
from natsray.engine.runner import run_experiment
ray.init(address=sys.argv[1])  # the user's own Ray session, without a runtime_env
run_experiment(resolve_paths(load_config(sys.argv[2])), sys.argv[3])
assert ray.is_initialized()  # left as the user had it
"""


@pytest.mark.ray
@pytest.mark.slow
def test_a_ray_session_the_user_started_gets_the_runtime_env_for_the_actors(
    cluster: Head, project: Path, reference: Path, tmp_path: Path
) -> None:
    path = on_cluster(project, "user-ray", ray={"runtime_env": {"py_modules": [str(project / "labplug")]}})
    env = {**cluster.env, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "token"}
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", USER_RAY, cluster.address, str(path), str(run_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert trajectory(run_dir) == trajectory(reference)


# --------------------------------------------------------------------------- entry points


def dist_info(site: Path, name: str, version: str, entry_points: str) -> None:
    """An installed distribution as pip leaves it: ``NAME-VERSION.dist-info`` with its entry points."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture(scope="module")
def site(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding the package and its dist-info, as ``pip install --target`` leaves it."""
    site = tmp_path_factory.mktemp("site")
    (site / "labplug").symlink_to(project / "labplug")
    dist_info(
        site,
        "labplug",
        "0.3",
        """
        [natsray.evaluators]
        edge = labplug.scoring:EdgeScore

        [natsray.strategies]
        climb = labplug.search:Climb
        random = labplug.search:Climb
        """,
    )
    return site


def test_an_entry_point_plugin_is_found_by_its_short_name(
    site: Path, tmp_path: Path, reference: Path
) -> None:
    env = clean_env(PYTHONPATH=str(site))
    done = natsray("components", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    assert "edge labplug.scoring:EdgeScore labplug 0.3" in lines
    assert "climb labplug.search:Climb labplug 0.3" in lines
    assert "benchmark natsray.evaluators.benchmark:BenchmarkEvaluator built-in" in lines
    assert (
        "random labplug.search:Climb labplug 0.3 (not used by this name: the built-in; "
        "give labplug.search:Climb)" in lines
    )
    config = experiment(strategy={"name": "climb"}, evaluator={"type": "edge"}, engine={"in_process": True})
    config["ray"] = {"runtime_env": None}
    path = write(tmp_path, "short.yaml", config)
    done = natsray("run", path.name, "--out", "run", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert trajectory(tmp_path / "run") == trajectory(reference)


def test_a_name_clash_is_reported(site: Path, tmp_path: Path) -> None:
    env = clean_env(PYTHONPATH=str(site))
    config = experiment(strategy={"name": "random"}, engine={"in_process": True}, ray={"runtime_env": None})
    config["evaluator"] = {"type": "edge"}
    done = natsray("validate", str(write(tmp_path, "r.yaml", config)), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        "natsray: warning: strategy.name: 'random' is the built-in "
        "natsray.strategies.random_search:RandomSearch; the strategy labplug 0.3 registers under that name "
        "(labplug.search:Climb) is reachable by its import path only"
    ]
    other = tmp_path / "other"
    dist_info(other, "otherplug", "1.0", "[natsray.evaluators]\nedge = otherplug:Edge\n")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(other)])
    config["strategy"] = {"name": "labplug.search:Climb"}
    done = natsray("validate", str(write(tmp_path, "c.yaml", config)), cwd=tmp_path, env=env)
    assert error_line(done).endswith(
        "evaluator.type: 'edge' is registered by labplug 0.3 (labplug.scoring:EdgeScore) and otherplug 1.0 "
        "(otherplug:Edge): give the import path of the one you mean"
    )


def test_components_piped_to_head_exits_quietly(tmp_path: Path) -> None:
    env = clean_env(PYTHONPATH=str(REPO))
    done = subprocess.run(
        "natsray components | head -1; echo status=${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    first, status = done.stdout.splitlines()
    assert first == "evaluators (evaluator.type):" and done.stderr == ""
    assert status in ("status=0", "status=141")  # 141 when head closed the pipe before natsray wrote
