"""A real local Ray head for tests: ``ray start --head --block`` with token authentication,
its own free ports, temp dir and ``HOME`` (holding ``~/.ray/auth_token``), stopped by PID."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RAY = [sys.executable, "-m", "ray.scripts.scripts"]
AUTH_VARS = (
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
    "RAY_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Ray auth/address variables, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if key not in AUTH_VARS}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


class Head:
    """A local ``ray start --head --block`` with its own ports, temp dir and auth token.

    As on a machine where ``ray get-auth-token --generate`` (or any local ``ray.init()``) has
    written ``~/.ray/auth_token``: ``ray start`` then turns token authentication on by itself,
    while ``ray job submit`` sends the token only when ``RAY_AUTH_MODE=token`` is set.
    """

    def __init__(self, root: Path, num_cpus: int = 2) -> None:
        self.root = root
        self.nodes: list[tuple[subprocess.Popen, Any]] = []
        self.home = root / "home"
        self.token_path = self.home / ".ray" / "auth_token"
        self.token_path.parent.mkdir(parents=True)
        self.token_path.write_text(secrets.token_hex(32))
        self.dashboard = f"http://127.0.0.1:{free_port()}"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"  # the GCS: what natsray run --address joins
        self.env = clean_env(HOME=str(self.home))
        # short temp dir: Ray's unix socket paths must stay under ~107 characters
        self.temp_dir = tempfile.mkdtemp(prefix="nrh", dir="/tmp")
        command = [
            *RAY, "start", "--head", "--block", "--disable-usage-stats",
            "--port", str(self.port), "--num-cpus", str(num_cpus), "--temp-dir", self.temp_dir,
            "--dashboard-host", "127.0.0.1", "--dashboard-port", self.dashboard.rsplit(":", 1)[1],
            "--ray-client-server-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()),
        ]  # fmt: skip
        self.log = open(root / "head.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        request = urllib.request.Request(
            f"{self.dashboard}/api/jobs/",
            headers={"Authorization": f"Bearer {self.token_path.read_text()}"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "ray head exited during start; see head.log"
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1.0)
        raise TimeoutError(f"Ray job server at {self.dashboard} not ready after {timeout} s")

    def add_node(self, num_cpus: int = 1) -> None:
        """Start a second node on this machine (``ray start --address HEAD --block``) joining this head."""
        log = open(self.root / f"node{len(self.nodes) + 1}.log", "w")  # noqa: SIM115 - closed in stop()
        command = [
            *RAY, "start", "--address", self.address, "--block", "--disable-usage-stats",
            "--num-cpus", str(num_cpus), "--dashboard-agent-listen-port", str(free_port()),
        ]  # fmt: skip
        env = {**self.env, "RAY_AUTH_MODE": "token"}
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.nodes.append((process, log))

    def wait_nodes(self, count: int, timeout: float = 120.0) -> None:
        """Wait until ``count`` nodes are alive (asked with ``ray list nodes`` of the state API)."""
        deadline = time.monotonic() + timeout
        command = [
            *RAY,
            "list",
            "nodes",
            "--address",
            self.dashboard,
            "--filter",
            "state=ALIVE",
            "--format",
            "json",
        ]
        env = {**self.env, "RAY_AUTH_MODE": "token"}
        while time.monotonic() < deadline:
            for process, _ in self.nodes:
                assert process.poll() is None, "a ray node exited during start; see node*.log"
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            if done.returncode == 0 and done.stdout.count('"node_id"') >= count:
                return
            time.sleep(1.0)
        raise TimeoutError(f"{count} Ray nodes not alive after {timeout} s")

    def stop(self) -> None:
        """Stop exactly this head (and the nodes it was given): SIGTERM to each ``ray start --block``
        stops the processes it started.

        (``ray stop`` is not used: it kills every Ray process of the user on the machine.)
        """
        for process, log in [*self.nodes, (self.process, self.log)]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # leftovers in the session we created
            log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@contextlib.contextmanager
def running_head(root: Path, num_cpus: int = 2, nodes: int = 0) -> Iterator[Head]:
    """A started :class:`Head` (its job server answering) of ``num_cpus`` CPUs, with ``nodes`` more nodes
    of 1 CPU each joined, stopped by PID on exit."""
    head = Head(root, num_cpus)
    try:
        head.wait_ready()
        for _ in range(nodes):
            head.add_node()
        if nodes:
            head.wait_nodes(1 + nodes)
        yield head
    finally:
        head.stop()
