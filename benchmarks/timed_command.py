"""A benchmark's command run as a new process and timed from outside it, as a user's shell would time it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_timed(
    argv: Sequence[str], what: str, *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``argv`` (output captured) and return it with its wall seconds; a command that fails ends the
    benchmark: ``SystemExit("WHAT failed: <its last stderr line, or its exit code>")``."""
    start = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise SystemExit(f"{what} failed: {lines[-1] if lines else f'exit code {done.returncode}'}")
    return done, wall
