"""``launch/submit.py`` refusals are one line with exit code 2: no token for token authentication, a job
server that cannot be reached, refuses the token, or fails the submission because the head's dashboard
agent is down (the real ``ray job submit`` client, against a local HTTP server answering as such a head
does: ``ray/dashboard/modules/job/job_head.py`` returns the agent error's traceback with status 500)."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AGENT_DOWN = (
    "Traceback (most recent call last):\n"
    '  File "ray/dashboard/modules/job/job_head.py", line 418, in submit_job\n'
    "    job_agent_client = await self.get_target_agent()\n"
    "aiohttp.client_exceptions.ClientConnectorError: Cannot connect to host 127.0.0.1:52365 ssl:default "
    "[Connect call failed ('127.0.0.1', 52365)]\n"
)


class _Head(http.server.BaseHTTPRequestHandler):
    """A job server: ``/token/...`` wants a token it never gets; otherwise submissions fail (agent down)."""

    def _send(self, status: int, body: str, kind: str = "application/json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/token"):
            self._send(401, "Unauthorized: Missing authentication token", "text/plain")
        elif self.path.startswith("/api/version"):
            import ray

            self._send(200, json.dumps({"version": "4", "ray_version": ray.__version__, "ray_commit": "x"}))
        else:  # /api/packages/...: the package is there already, no upload
            self._send(200, "{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(500, AGENT_DOWN, "text/plain")

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    pytest.importorskip("ray")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Head)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=10)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CASES = {
    "token mode without a token": ({"RAY_AUTH_MODE": "token"}, None, "RAY_AUTH_MODE=token but no token"),
    "no job server there": ({}, "closed", "Failed to connect to Ray at address"),
    "the cluster wants a token": ({}, "/token", "set RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH"),
    "the head's dashboard agent is down": (
        {},
        "",
        "ClientConnectorError: Cannot connect to host 127.0.0.1:52365",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_submit_refusal_is_one_line_exit_2(case: str, head: str, tmp_path: Path) -> None:
    env_extra, where, expected = CASES[case]
    address = f"http://127.0.0.1:{_closed_port()}" if where == "closed" else f"{head}{where or ''}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(REPO), **env_extra)  # a home without ~/.ray/auth_token
    done = subprocess.run(
        [sys.executable, str(REPO / "launch/submit.py"), "--address", address, "launch/smoke.yaml"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    logged = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+\s+(INFO|WARNING) ")  # Ray's own log lines
    errors = [line for line in done.stderr.splitlines() if not logged.match(line)]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert errors[0].startswith("submit: ") and expected in errors[0], errors[0]
