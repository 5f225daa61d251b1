"""Cluster launch paths for real: ``launch/submit.py`` against a local Ray head with token
authentication, a multi-node cluster (``ray.cluster_utils.Cluster``) running the engine,
and the syntax/structure of the SLURM, ``ray up`` and KubeRay files."""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from ray_head import RAY, Head, free_port, running_head

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
SMOKE = LAUNCH / "smoke.yaml"


def load_submit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("natsray_launch_submit", LAUNCH / "submit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


submit = load_submit()


# --- the wrapper's logic, no Ray ---------------------------------------------------------


def test_auth_env_turns_token_mode_on_only_when_a_token_exists(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert "RAY_AUTH_MODE" not in submit.auth_env(home)
    token = tmp_path / "token"
    token.write_text("abc")
    assert submit.auth_env({**home, "RAY_AUTH_TOKEN_PATH": str(token)})["RAY_AUTH_MODE"] == "token"
    assert submit.auth_env({**home, "RAY_AUTH_TOKEN": "abc"})["RAY_AUTH_MODE"] == "token"
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("abc")
    assert submit.auth_env(home)["RAY_AUTH_MODE"] == "token"  # ~/.ray/auth_token
    assert submit.auth_env({**home, "RAY_AUTH_MODE": "disabled"})["RAY_AUTH_MODE"] == "disabled"
    with pytest.raises(SystemExit, match=r"RAY_AUTH_MODE=token but no token"):
        submit.auth_env({"HOME": str(tmp_path / "nohome"), "RAY_AUTH_MODE": "token"})


def test_build_command_is_a_ray_job_submit_of_natsray_run(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO / "launch")
    args = submit._parser().parse_args(
        [
            "--address",
            "http://h:8265",
            "--submission-id",
            "s1",
            "smoke.yaml",
            "--set",
            "seed=3",
            "--out",
            "/x",
        ]
    )
    command = submit.build_command(args)
    assert command[:5] == [sys.executable, "-m", "ray.scripts.scripts", "job", "submit"]
    assert command[command.index("--address") + 1] == "http://h:8265"
    assert command[command.index("--working-dir") + 1] == str(REPO)
    assert command[command.index("--runtime-env") + 1] == str(LAUNCH / "runtime_env.yaml")
    assert command[command.index("--submission-id") + 1] == "s1"
    assert "--no-wait" in command  # without --wait: submit and return
    # the config path is made relative to the uploaded working directory (the job's cwd)
    assert command[command.index("--") + 1 :] == [
        "natsray", "run", "launch/smoke.yaml", "--set", "seed=3", "--out", "/x",
    ]  # fmt: skip
    submit.main(
        ["--dry-run", "--submission-id", "s1", "--address", "http://h:8265", "smoke.yaml", "--set", "seed=3"]
    )
    printed = shlex.split(capsys.readouterr().out)
    assert printed[printed.index("--") :] == ["--", "natsray", "run", "launch/smoke.yaml", "--set", "seed=3"]
    outside = tmp_path / "x.yaml"
    outside.write_text("seed: 0\n")
    for config, message in ((str(outside), "is outside --working-dir"), ("nope.yaml", "no such file")):
        with pytest.raises(SystemExit, match=message):
            submit.build_command(submit._parser().parse_args([config]))


def test_runtime_env_uploads_code_but_not_data_or_results() -> None:
    runtime_env = yaml.safe_load((LAUNCH / "runtime_env.yaml").read_text())
    excludes = set(runtime_env["excludes"])
    assert {"runs/", "data/", "*.npz", ".venv/", ".git/"} <= excludes
    assert not any(pattern.strip("/*") in ("natsray", "configs", "launch") for pattern in excludes)


def test_slurm_script_is_valid_bash_with_the_ray_pattern() -> None:
    script = (LAUNCH / "slurm.sbatch").read_text()
    bash = shutil.which("bash")
    assert bash, "bash is needed to check the SLURM script"
    subprocess.run([bash, "-n", str(LAUNCH / "slurm.sbatch")], check=True)
    assert script.startswith("#!/bin/bash") and "#SBATCH --nodes" in script
    for needle in (
        "ray start",
        "--head",
        "--block",
        "natsray run",
        "RAY_AUTH_MODE=token",
        "scancel --signal=TERM",
    ):
        assert needle in script, needle
    commands = [line.split("#", 1)[0] for line in script.splitlines()]
    assert not any("ray stop" in line for line in commands), "a bare `ray stop` kills other jobs' Ray too"
    assert "--nodes=1" in script  # fits any cluster; tests/test_slurm.py runs it under a real SLURM


def test_ray_up_cluster_yaml_passes_rays_own_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    cluster = yaml.safe_load((LAUNCH / "cluster.yaml").read_text())
    validate_config(prepare_config(cluster))  # jsonschema of `ray up`; raises on an unknown key
    assert cluster["provider"]["type"] == "aws"
    workers = [
        spec for name, spec in cluster["available_node_types"].items() if name != cluster["head_node_type"]
    ]
    assert workers and all(spec["min_workers"] >= 1 for spec in workers)
    setup = "\n".join(cluster["setup_commands"])
    assert "-e /home/ubuntu/natsray" in setup and "--no-deps xautodl==1.0.0" in setup
    assert "ray start --head" in "\n".join(cluster["head_start_ray_commands"])


def test_kuberay_rayjob_manifest_structure() -> None:
    job = yaml.safe_load((LAUNCH / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert "natsray run configs/" in spec["entrypoint"] and spec["shutdownAfterJobFinishes"] is True
    config = spec["entrypoint"].split("natsray run ", 1)[1].split()[0]
    assert (REPO / config).is_file() or not (REPO / "configs").exists(), f"{config} missing"
    yaml.safe_load(spec["runtimeEnvYAML"])
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {port["containerPort"] for port in head["ports"]} >= {6379, 8265}
    groups = cluster["workerGroupSpecs"]
    assert groups and all(
        group["minReplicas"] <= group["replicas"] <= group["maxReplicas"] for group in groups
    )
    for container in [head] + [group["template"]["spec"]["containers"][0] for group in groups]:
        assert container["image"] == head["image"]
        assert container["resources"]["limits"]["cpu"] == container["resources"]["requests"]["cpu"]


# --- a multi-node cluster (two Ray nodes on this machine) running the engine ----------


@pytest.mark.ray
def test_engine_spreads_actors_over_the_nodes_of_a_multi_node_cluster(tmp_path: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from natsray.config import load_config
    from natsray.engine.runner import run_experiment
    from natsray.experiment.report import finalize_run

    # 2 actors of 1 CPU on 2 nodes of 1 CPU: Ray must place one actor on each node
    config = load_config(SMOKE, ["budget.evaluations=8", "resources.actors=2", "resources.cpus_per_actor=1"])
    temp_dir = tempfile.mkdtemp(prefix="nrc", dir="/tmp")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1, "include_dashboard": False, "temp_dir": temp_dir,
            "dashboard_agent_listen_port": free_port(),
        },
    )  # fmt: skip
    try:
        worker_node = cluster.add_node(num_cpus=1, dashboard_agent_listen_port=free_port())
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        node_ids = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        assert len(node_ids) == 2 and worker_node.node_id in node_ids
        summary = run_experiment(config, tmp_path / "run")
        actors = ray._private.state.actors()  # the GCS actor table keeps finished actors
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert summary.evaluations == 8 and summary.failed == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()]
    worker_pids = {int(record["worker"].rsplit(":", 1)[1]) for record in records}
    node_of_pid = {
        actor["Pid"]: actor["Address"]["NodeID"]
        for actor in actors.values()
        if actor["ActorClassName"].endswith("_EvaluatorActor")
    }
    assert worker_pids <= set(node_of_pid), "every journal line comes from an evaluator actor"
    assert {node_of_pid[pid] for pid in worker_pids} == node_ids  # both nodes evaluated candidates
    finalize_run(tmp_path / "run")
    assert (tmp_path / "run" / "evaluations.csv").read_text().count("\n") == 9


# --- a real Ray head with token authentication, driven through the wrapper ------------


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    with running_head(tmp_path_factory.mktemp("head")) as started:
        yield started


def run_submit(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LAUNCH / "submit.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.mark.ray
def test_submit_runs_an_experiment_as_a_ray_job(head: Head, tmp_path: Path) -> None:
    # RAY_AUTH_MODE is not set: the wrapper finds ~/.ray/auth_token and switches token mode on
    run_dir = tmp_path / "smoke"
    done = run_submit(
        "--address", head.dashboard, "--wait", "--submission-id", "natsray-test-smoke",
        str(SMOKE), "--out", str(run_dir), "--set", "budget.evaluations=6", "--set", "resources.actors=1",
        env=head.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == "job id: natsray-test-smoke"
    assert "succeeded" in done.stdout + done.stderr
    records = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(record["status"] == "ok" for record in records)
    assert all(record["objectives"]["params"] > 0 for record in records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["evaluations"] == 6 and summary["failed"] == 0
    assert summary["best_objectives"]["params"] == min(r["objectives"]["params"] for r in records)
    assert (run_dir / "evaluations.csv").is_file() and (run_dir / "best_so_far.png").is_file()


@pytest.mark.ray
def test_plain_ray_job_submit_without_token_mode_is_refused(head: Head) -> None:
    done = subprocess.run(
        [*RAY, "job", "submit", "--address", head.dashboard, "--no-wait", "--", "true"],
        env=head.env,  # the same ~/.ray/auth_token, but no RAY_AUTH_MODE=token
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Unauthorized: Missing authentication token" in done.stdout + done.stderr
