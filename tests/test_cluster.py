"""Reaching Ray clusters for real (``natsray.engine.cluster``): joining a token-authenticated
``ray start --head`` by ``--address`` / ``RAY_ADDRESS``, a bounded wait on an address where
nothing listens, resource requests no node can satisfy (local Ray, joined head, ``validate``),
resuming where the user is now, and config paths resolved at load."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from archive_factory import write_archive
from ray_head import RAY, Head, clean_env, free_port, running_head

from natsray.config import EngineConfig, load_config
from natsray.engine.cluster import (
    ClusterError,
    check_resources,
    local_nodes,
    probe_address,
    wait_for_resources,
)

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "launch" / "smoke.yaml"
CLI = [sys.executable, "-c", "import sys; from natsray.cli import main; sys.exit(main())"]
TOKEN_WARNING = "Token authentication is enabled"


def natsray(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 300):
    env = dict(env or clean_env())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    start = time.monotonic()
    done = subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    done.seconds = time.monotonic() - start  # type: ignore[attr-defined]
    return done


def smoke(*overrides: str):
    return load_config(SMOKE, list(overrides))


# --- the resource check, no Ray ----------------------------------------------------------


def test_check_resources_names_the_resource_the_amount_asked_and_available() -> None:
    two_cpus = [{"CPU": 2.0}]
    assert check_resources(smoke(), two_cpus) is None  # 2 actors x 1 CPU on 2 CPUs
    reason = check_resources(smoke("resources.gpus_per_actor=1"), two_cpus, "this machine")
    assert reason.startswith("resources.gpus_per_actor: 1 GPU asked per actor, 0 available on any node")
    reason = check_resources(smoke("resources.cpus_per_actor=3"), two_cpus)
    assert reason.startswith("resources.cpus_per_actor: 3 CPU asked per actor, 2 available")
    # each actor fits a node, but not all of them at once: 3 actors of 2 CPU on nodes of 2 + 3 CPUs
    three = smoke("resources.actors=3", "resources.cpus_per_actor=2")
    reason = check_resources(three, [{"CPU": 2}, {"CPU": 3}])
    assert reason.startswith("resources.actors: 3 actors asked (6 CPU), the cluster has room for 2")
    gpu_nodes = [{"CPU": 8, "GPU": 1}, {"CPU": 8, "GPU": 1}]
    half = ("resources.gpus_per_actor=0.5", "resources.cpus_per_actor=1")
    assert check_resources(smoke(*half, "resources.actors=4"), gpu_nodes) is None
    assert "room for 4" in check_resources(smoke(*half, "resources.actors=5"), gpu_nodes)
    in_driver = dataclasses.replace(three, engine=EngineConfig(in_process=True))
    wait_for_resources(in_driver, list, 0)  # runs in the driver: asks Ray for nothing


def test_wait_for_resources_waits_for_a_growing_cluster_then_gives_up() -> None:
    grown = iter([[{"CPU": 1}], [{"CPU": 1}], [{"CPU": 1}, {"CPU": 1}]])
    wait_for_resources(smoke(), lambda: next(grown), 10.0)  # the third look finds the second node
    start = time.monotonic()
    with pytest.raises(ClusterError, match=r"room for 1 .*after waiting 1 s: ray.resource_wait_s"):
        wait_for_resources(smoke(), lambda: [{"CPU": 1}], 1.0)
    assert time.monotonic() - start < 5


def test_probe_address_gives_up_after_the_timeout_naming_the_address() -> None:
    port = free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ClusterError, match=rf"ray address 127.0.0.1:{port}: nothing answers there after 1 s"):
        probe_address(f"127.0.0.1:{port}", 1.0)
    assert time.monotonic() - start < 5
    with pytest.raises(ClusterError, match="expected HOST:PORT"):
        probe_address("somewhere", 1.0)


def test_validate_and_run_check_resources_against_this_machine_before_ray(tmp_path: Path) -> None:
    cpus = os.cpu_count()
    gpus = local_nodes()[0]["GPU"]
    line = (
        f"natsray: error: {SMOKE}: resources.cpus_per_actor: {cpus + 1} CPU asked per actor, {cpus} "
        f"available on any node of this machine ({cpus} CPU, {gpus:g} GPU in all, 1 node(s)); "
        "for a cluster: --address HOST:PORT"
    )
    for command in ("validate", "run"):  # run refuses the same way, before Ray starts, making nothing
        out = ("--out", str(tmp_path / "run")) if command == "run" else ()
        done = natsray(command, str(SMOKE), "--set", f"resources.cpus_per_actor={cpus + 1}", *out)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "run").exists()
    done = natsray("validate", str(SMOKE), "--set", "resources.gpus_per_actor=1000")
    assert done.returncode == 2 and "resources.gpus_per_actor: 1000 GPU asked per actor" in done.stderr
    done = natsray("validate", str(SMOKE), "--set", "resources.gpus_per_actor=1000", "--address", "h:6379")
    assert done.returncode == 0 and "resources checked when the run joins h:6379" in done.stdout


def test_outputs_stay_out_of_a_working_dir_upload_and_a_failed_upload_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every run and sweep directory natsray makes holds a ``.gitignore`` of ``*``, which Ray's packaging
    of a ``working_dir`` honours; the run's own directory is also in the ``excludes`` natsray passes."""
    import zipfile

    import ray
    import toy_evaluator  # noqa: F401 - registers evaluator.type toy
    from ray._private.runtime_env.packaging import create_package

    from natsray.cli import main
    from natsray.engine.cluster import connect_ray

    project = tmp_path / "project"
    (project / "mylab").mkdir(parents=True)
    (project / "mylab" / "hill.py").write_text("X = 1\n")
    config = project / "toy.yaml"
    toy = {"strategy": {"name": "random"}, "evaluator": {"type": "toy"}, "budget": {"evaluations": 4}}
    config.write_text(yaml.safe_dump({**toy, "engine": {"in_process": True}}))
    argv = ["run", str(config), "--no-progress", "--out"]
    assert main([*argv, str(project / "runs" / "one")]) == 0
    assert main([*argv, str(project / "runs" / "sweep"), "--seeds", "0-1", "--parallel", "1"]) == 0
    for made in ("runs/one", "runs/sweep"):
        assert (project / made / ".gitignore").read_text().splitlines()[-1] == "*"
    assert main(["report", str(project / "runs" / "one")]) == 0  # the readers do not mind it
    assert main(["resume", str(project / "runs" / "one"), "--set", "budget.evaluations=6"]) == 0
    create_package(str(project), tmp_path / "pkg.zip", include_gitignore=True)
    shipped = {name for name in zipfile.ZipFile(tmp_path / "pkg.zip").namelist() if not name.endswith("/")}
    assert shipped == {"toy.yaml", "mylab/hill.py"}, shipped
    # a directory made before (no .gitignore): the run's own output is excluded from the upload
    old = project / "runs" / "old"
    old.mkdir()
    (old / "evaluations.jsonl").write_text("{}\n")
    kwargs: dict = {}

    def init(**given: object) -> None:
        kwargs.update(given)
        raise RuntimeError("not started")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    loaded = load_config(config, [f"ray.runtime_env.working_dir={project}"])
    with pytest.raises(ClusterError):
        connect_ray(loaded, None, old)
    excludes = kwargs["runtime_env"]["excludes"]
    assert excludes == ["/runs/old/"]
    create_package(str(project), tmp_path / "pkg2.zip", include_gitignore=True, excludes=excludes)
    assert "runs/old/evaluations.jsonl" not in zipfile.ZipFile(tmp_path / "pkg2.zip").namelist()

    # an upload Ray refuses: the cause in one line, not only "Failed to set up runtime environment."
    def too_big(**_: object) -> None:
        raise ray.exceptions.RuntimeEnvSetupError(
            f"Failed to upload working_dir {project} to the Ray cluster: Package size (749.79MiB) exceeds "
            "the maximum size of 512.00MiB. To exclude large files, add them to '.gitignore' or '.rayignore'"
        )

    monkeypatch.setattr(ray, "init", too_big)
    with pytest.raises(ClusterError) as error:
        connect_ray(loaded, None)
    assert str(error.value) == (
        f"ray.address: cannot start or join a local Ray instance: ray.runtime_env: Failed to upload "
        f"working_dir {project} to the Ray cluster: Package size (749.79MiB) exceeds the maximum size of "
        "512.00MiB; leave large files out with ray.runtime_env.excludes, a .gitignore or a .rayignore "
        "(docs/cluster.md)"
    )


# --- paths resolved at load, in validate as in run ---------------------------------------


def test_runtime_env_paths_are_checked_and_stored_absolute(tmp_path: Path) -> None:
    write_archive(tmp_path / "nats", 40)
    config = {
        "strategy": {"name": "regularized_evolution", "population": 4, "sample_size": 2},
        "evaluator": {"type": "benchmark", "archive": "nats", "dataset": "cifar10", "objective": ["params"]},
        "budget": {"evaluations": 2},
        "engine": {"in_process": True},  # no Ray needed: the paths are what is tested
        "output": {"progress": False},
    }
    config["ray"] = {"runtime_env": {"working_dir": "code", "py_modules": ["lib/mod"], "pip": ["numpy"]}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    for missing in ("code", "lib/mod"):
        done = natsray("validate", "exp.yaml", cwd=tmp_path)
        assert done.returncode == 2
        key = "working_dir" if missing == "code" else "py_modules[0]"
        assert f"exp.yaml: ray.runtime_env.{key}: {missing}: no such file or directory" in done.stderr
        (tmp_path / missing).mkdir(parents=True)
    assert natsray("validate", "exp.yaml", cwd=tmp_path).returncode == 0
    done = natsray("run", "exp.yaml", "--out", "run", "--no-progress", cwd=tmp_path)
    # the archive holds 40 of 15,625 records: a run whose cells mostly miss it exits 1 (files kept)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert done.returncode == (1 if summary["failed"] * 2 > summary["evaluations"] else 0), done.stderr
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["evaluator"]["archive"] == str(tmp_path / "nats")
    assert stored["ray"]["runtime_env"] == {
        "working_dir": str(tmp_path / "code"),
        "py_modules": [str(tmp_path / "lib" / "mod")],
        "pip": ["numpy"],
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = natsray("resume", str(tmp_path / "run"), "--set", "budget.evaluations=3", cwd=elsewhere)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["evaluations"] == 3, done.stderr
    assert done.returncode == (1 if summary["failed"] * 2 > summary["evaluations"] else 0), done.stderr


def test_a_dataset_without_data_dir_is_refused_by_validate() -> None:
    done = natsray(
        "validate", str(REPO / "configs" / "train-cifar10-gpu.yaml"), "--set", "evaluator.data_dir=null"
    )
    assert done.returncode == 2
    assert "train-cifar10-gpu.yaml: evaluator.data_dir: dataset 'cifar10' needs its directory" in done.stderr


# --- a local Ray: infeasible requests fail fast, no token warning ------------------------


@pytest.mark.ray
def test_local_run_asking_more_cpus_than_the_machine_has_fails_fast(tmp_path: Path) -> None:
    cpus = os.cpu_count()
    done = natsray(
        "run", str(SMOKE), "--out", str(tmp_path / "run"), "--set", "resources.actors=2",
        "--set", f"resources.cpus_per_actor={cpus + 1}", "--set", f"resources.num_cpus={cpus}",
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"resources.cpus_per_actor: {cpus + 1} CPU asked per actor, {cpus} available" in done.stderr
    assert TOKEN_WARNING not in done.stderr  # the warning nobody can act on is gone


@pytest.mark.ray
def test_an_address_where_nothing_listens_fails_in_bounded_time(tmp_path: Path) -> None:
    port = free_port()
    done = natsray(
        "run", str(SMOKE), "--out", str(tmp_path / "run"), "--address", f"127.0.0.1:{port}",
        "--set", "ray.connect_timeout_s=3", timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"ray address 127.0.0.1:{port}: nothing answers there after 3 s" in done.stderr
    assert done.seconds < 60


# --- a real head with token authentication -----------------------------------------------


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    with running_head(tmp_path_factory.mktemp("head")) as started:
        yield started


@pytest.mark.ray
def test_run_joins_a_token_head_by_address_and_resumes_by_ray_address(head: Head, tmp_path: Path) -> None:
    # RAY_AUTH_MODE unset, the token only in ~/.ray/auth_token: as after `ray get-auth-token --generate`
    run_dir = tmp_path / "run"
    done = natsray(
        "run", str(SMOKE), "--address", head.address, "--out", str(run_dir),
        "--set", "budget.evaluations=3", "--set", "resources.actors=1", env=head.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "evaluations   3 (0 failed" in done.stdout
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert stored["ray"]["address"] is None  # the run directory does not pin the cluster
    # resume joins where the user is now: here the same head, named by RAY_ADDRESS
    done = natsray(
        "resume", str(run_dir), "--set", "budget.evaluations=5", env={**head.env, "RAY_ADDRESS": head.address}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "evaluations   5 (0 failed" in done.stdout


@pytest.mark.ray
def test_a_driver_without_the_token_with_a_wrong_one_or_an_http_address_fails_in_one_line(
    head: Head, tmp_path: Path
) -> None:
    no_home = str(tmp_path / "nohome")  # no ~/.ray/auth_token there
    hint = "set RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or copy the cluster's ~/.ray/auth_token"
    cases = {
        "missing": (clean_env(HOME=no_home), "the cluster uses token authentication and no token was found"),
        "wrong": (clean_env(HOME=no_home, RAY_AUTH_TOKEN="0" * 64), "the cluster rejected the token from "),
        "mode": (clean_env(HOME=no_home, RAY_AUTH_MODE="token"), "RAY_AUTH_MODE=token but no token: "),
    }
    for name, (env, expected) in cases.items():
        done = natsray(
            "run", str(SMOKE), "--address", head.address, "--out", str(tmp_path / name),
            "--set", "ray.connect_timeout_s=10", env=env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr[-3000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr[-3000:]  # none of Ray's gcs_client retry warnings
        assert lines[0].startswith(f"natsray: error: ray address {head.address}: {expected}"), lines
        assert hint in lines[0] and done.seconds < 30
    http = ("--address", head.dashboard, "--out", str(tmp_path / "http"))
    done = natsray("run", str(SMOKE), *http, env=head.env)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [
        f"natsray: error: ray address {head.dashboard}: an HTTP address is the job server's (for ray job "
        "submit); a driver joins the head's GCS address HOST:PORT (e.g. 127.0.0.1:6379)"
    ]


PLUGIN = """
import os
from dataclasses import dataclass

import ray

from natsray import BaseEvaluator, Candidate, Score


@dataclass(frozen=True)
class ActorScoreConfig:
    type: str = "jobplug.scoring:ActorScore"
    objective: tuple[str, ...] = ("score",)


class ActorScore(BaseEvaluator):
    Config = ActorScoreConfig

    def score(self, candidate: Candidate) -> Score:
        in_actor = ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None
        return Score({"score": candidate.arch.code % 97}, {"in_actor": float(in_actor)}, cost_s=1.0)
"""


@pytest.mark.ray
def test_a_plugin_config_with_working_dir_runs_as_a_ray_job(head: Head, tmp_path: Path) -> None:
    """docs/extending.md's ``ray: {runtime_env: {working_dir: .}}`` under ``ray job submit --working-dir``:
    the job's working_dir wins (Ray refuses the same key from ray.init), and the actors import the plugin."""
    project = tmp_path / "project"
    (project / "jobplug").mkdir(parents=True)
    (project / "jobplug" / "__init__.py").write_text("")
    (project / "jobplug" / "scoring.py").write_text(PLUGIN)
    config = {
        "strategy": {"name": "random"},
        "evaluator": {"type": "jobplug.scoring:ActorScore"},
        "budget": {"evaluations": 4},
        "resources": {"actors": 1, "cpus_per_actor": 1},
        "ray": {"runtime_env": {"working_dir": "."}},
        "output": {"progress": False},
    }
    (project / "plugin.yaml").write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    runtime_env = {"env_vars": {"PYTHONPATH": str(REPO)}}  # natsray itself, as installed on a cluster
    done = subprocess.run(
        [*RAY, "job", "submit", "--address", head.dashboard, "--working-dir", str(project),
         "--runtime-env-json", json.dumps(runtime_env), "--",
         "python", "-m", "natsray", "run", "plugin.yaml", "--out", str(run_dir)],
        env={**head.env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok"] * 4
    assert all(r["metrics"]["in_actor"] == 1.0 for r in records)  # scored by the actors, which import it


@pytest.mark.ray
def test_joined_head_without_the_gpus_asked_fails_after_the_bounded_wait(head: Head, tmp_path: Path) -> None:
    done = natsray(
        "run", str(SMOKE), "--address", head.address, "--out", str(tmp_path / "run"),
        "--set", "resources.gpus_per_actor=1", "--set", "ray.resource_wait_s=2", env=head.env, timeout=180,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "natsray: error: resources.gpus_per_actor: 1 GPU asked per actor, 0 available on any node of the "
        "cluster (2 CPU, 0 GPU in all, 1 node(s)) (after waiting 2 s: ray.resource_wait_s)"
    )


@pytest.mark.ray
def test_actors_that_do_not_start_in_time_fail_the_run_in_one_line(head: Head, tmp_path: Path) -> None:
    done = natsray(
        "run", str(SMOKE), "--address", head.address, "--out", str(tmp_path / "run"),
        "--set", "ray.actor_start_timeout_s=0", env=head.env, timeout=180,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("natsray: error: evaluator actors not started after 0 s (ray.actor_start_timeout_s)")
    )


@pytest.mark.ray
def test_sigterm_checkpoints_the_run_and_exits_130(head: Head, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**head.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), head.env.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [*CLI, "run", str(SMOKE), "--address", head.address, "--out", str(run_dir), "--no-progress",
         "--set", "budget.evaluations=15000", "--set", "budget.wall_seconds=300",
         "--set", "output.checkpoint_every=100000", "--set", "output.checkpoint_seconds=100000"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        journal = run_dir / "evaluations.jsonl"
        while not journal.exists() or len(journal.read_text().splitlines()) < 3:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)  # what scancel and a time limit send
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-3000:]
    assert f"natsray: interrupted; continue with 'natsray resume {run_dir}'" in err  # names the run
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    lines = len((run_dir / "evaluations.jsonl").read_text().splitlines())
    assert checkpoint["journal_lines"] == lines >= 3 and checkpoint["finished"] is False
    # the checkpoint matches the journal: a resume finishes the candidates that were in flight
    # (the budget counts them already) and evaluates nothing twice
    done = natsray("resume", str(run_dir), "--set", f"budget.evaluations={lines + 2}", env=head.env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_resumed_exactly(run_dir, checkpoint, lines + 2)


TWO_RUNS = """
import os, signal, sys
import natsray

received = []
signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))  # the script's own


class Terminate(natsray.Callback):
    def on_result(self, result, index, candidate):
        if index == 20:
            os.kill(os.getpid(), signal.SIGTERM)  # what scancel sends


config = {"strategy": {"name": "random"}, "budget": {"evaluations": 2000}, "resources": {"actors": 1}}
for name in ("first", "second"):
    try:
        natsray.run(config, out=os.path.join(sys.argv[1], name), address=sys.argv[2], progress=False,
                    evaluator=lambda arch, context: {"score": 1.0}, callbacks=[Terminate()])
        print(name, "finished")
    except KeyboardInterrupt as exc:
        print(name, type(exc).__name__)
    os.kill(os.getpid(), signal.SIGTERM)  # between runs
    print(name, "then the script's handler", received)
    received.clear()
"""


@pytest.mark.ray
def test_two_runs_in_one_process_each_take_a_sigterm_and_the_script_gets_one_between(
    head: Head, tmp_path: Path
) -> None:
    """natsray.run twice in one script (each joins Ray and shuts it down): a SIGTERM stops each at a
    consistent point, and one sent between them reaches the script's own handler. ``ray.init`` replaces
    that handler and ``ray.shutdown`` leaves SIGTERM at the system default, which ended the script."""
    script = tmp_path / "two_runs.py"
    script.write_text(TWO_RUNS)
    env = {**head.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), head.env.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), head.address],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "first ConsistentInterrupt",
        "first then the script's handler [15]",
        "second ConsistentInterrupt",
        "second then the script's handler [15]",
    ]
    for name in ("first", "second"):
        checkpoint = json.loads((tmp_path / name / "checkpoint.json").read_text())
        lines = len((tmp_path / name / "evaluations.jsonl").read_text().splitlines())
        assert 20 < checkpoint["journal_lines"] == lines < 2000 and checkpoint["finished"] is False


def assert_resumed_exactly(run_dir: Path, checkpoint: dict, budget: int) -> None:
    """The resumed journal: every candidate once, those in flight at the checkpoint included."""
    ids = [
        json.loads(line)["candidate_id"] for line in (run_dir / "evaluations.jsonl").read_text().splitlines()
    ]
    in_flight = {entry["candidate"]["id"] for entry in checkpoint["engine"]["outstanding"]}
    assert len(ids) == len(set(ids)) == max(budget, checkpoint["engine"]["evaluations"])
    assert in_flight <= set(ids)
    assert json.loads((run_dir / "summary.json").read_text())["evaluations"] == len(ids)


@pytest.mark.ray
@pytest.mark.slow
def test_docs_one_machine_head_recipe_runs_with_rays_default_ports_taken(tmp_path: Path) -> None:
    """docs/cluster.md section 2, run as written (run directory moved into tmp_path), while another
    program holds Ray's default ports (GCS 6379, client server 10001, dashboard 8265, dashboard
    agent 52365): the recipe picks free ports for everything its head opens."""
    import contextlib
    import socket

    text = (REPO / "docs/cluster.md").read_text()
    block = text.split("## 2. Driver joining a Ray head", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    block = block.replace("/tmp/smoke-head", str(tmp_path / "smoke-head"))
    (tmp_path / "home").mkdir()
    env = clean_env(HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    with contextlib.ExitStack() as stack:
        for port in (6379, 10001, 8265, 52365):  # taken, as by another Ray (skipped if something has it)
            sock = stack.enter_context(socket.socket())
            with contextlib.suppress(OSError):
                sock.bind(("", port))
                sock.listen()
        process = subprocess.Popen(
            ["bash", "-e", "-c", block], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        try:
            output, _ = process.communicate(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the head, should the block have stopped early
    assert process.returncode == 0, output[-3000:]
    summary = json.loads((tmp_path / "smoke-head" / "summary.json").read_text())
    assert summary["evaluations"] == 12


LOCAL_STOP = """
import json, sys, threading
import ray
import natsray
from natsray.engine import cluster

seen = []


class Probe(natsray.Callback):
    def on_run_end(self, run_dir, summary):  # after the CSV and plots, before run() returns
        seen.append({"stopping": len(cluster._STOPPING), "csv": (run_dir / "evaluations.csv").is_file()})


config = {"strategy": {"name": "random"}, "budget": {"evaluations": 6}, "resources": {"actors": 1}}
for name in ("first", "second"):  # the second run's ray.init comes right after the first's stop
    run = natsray.run(config, out=f"{sys.argv[1]}/{name}", progress=False, callbacks=[Probe()],
                      evaluator=lambda arch, context: {"score": 1.0})
    seen[-1].update(evaluations=len(run.evaluations), ray_after=ray.is_initialized())
stops = [t.name for t in threading.enumerate() if t.name == "natsray-ray-stop"]
print(json.dumps({"seen": seen, "stop_threads_left": stops}))
"""


@pytest.mark.ray
def test_a_finished_runs_local_ray_stops_while_its_files_are_written(tmp_path: Path) -> None:
    """``ray.shutdown`` of the local Ray a run started (1.1-1.6 s of waiting for Ray's processes) runs
    on a thread beside the run's CSV, plots and callbacks; ``run`` returns with Ray down, and the next
    run in the process starts its own."""
    done = subprocess.run(
        [sys.executable, "-c", LOCAL_STOP, str(tmp_path)],
        env=clean_env(PYTHONPATH=str(REPO)), cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    run_end = {"stopping": 1, "csv": True, "evaluations": 6, "ray_after": False}
    assert result == {"seen": [run_end, run_end], "stop_threads_left": []}
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-3000:]


@pytest.mark.ray
def test_a_sigterm_while_the_driver_waits_on_ray_is_checkpointed(tmp_path: Path) -> None:
    """A training run's driver spends its time blocked in ``ray.wait``; a SIGTERM that lands there has
    its handler run from Ray's C++ wait, and Ray hands the handler's ConsistentInterrupt back as a plain
    KeyboardInterrupt. The run is checkpointed all the same (exit 130, checkpoint == journal). Before,
    such a run (3 s candidates) exited 130 with no checkpoint.json at all."""
    (tmp_path / "slowfn.py").write_text(
        "import time\n\ndef score(arch, context):\n    time.sleep(3)\n    return {'score': 1.0}\n"
    )
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [*CLI, "run", str(SMOKE), "--out", str(run_dir), "--no-progress",
         "--set", "evaluator={type: function, function: 'slowfn:score', objective: [score]}",
         "--set", "budget.evaluations=200", "--set", "resources.actors=1",
         "--set", "output.checkpoint_every=100000", "--set", "output.checkpoint_seconds=100000"],
        env=clean_env(PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)])), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        journal = run_dir / "evaluations.jsonl"
        while not journal.exists() or not journal.read_text().splitlines():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.05)
        time.sleep(0.3)  # the driver is back in ray.wait, on the next 3 s candidate
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-3000:]
    assert f"natsray: interrupted; continue with 'natsray resume {run_dir}'" in err
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    lines = len((run_dir / "evaluations.jsonl").read_text().splitlines())
    assert checkpoint["journal_lines"] == lines >= 1 and checkpoint["finished"] is False
