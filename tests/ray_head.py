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

    def __init__(self, root: Path) -> None:
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
            "--port", str(self.port), "--num-cpus", "2", "--temp-dir", self.temp_dir,
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

    def stop(self) -> None:
        """Stop exactly this head: SIGTERM to ``ray start --block`` stops the processes it started.

        (``ray stop`` is not used: it kills every Ray process of the user on the machine.)
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers in the session we created
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@contextlib.contextmanager
def running_head(root: Path) -> Iterator[Head]:
    """A started :class:`Head` (its job server answering), stopped by PID on exit."""
    head = Head(root)
    try:
        head.wait_ready()
        yield head
    finally:
        head.stop()
