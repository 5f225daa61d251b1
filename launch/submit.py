#!/usr/bin/env python3
"""Submit a natsray experiment to a running Ray cluster as a Ray job (a ``ray job submit`` wrapper).

Uploads the repository (minus what ``launch/runtime_env.yaml`` excludes: runs, data, the
venv, git) and runs ``natsray run CONFIG [ARGS...]`` on the cluster. Prints the job id;
``--wait`` follows the job's logs and exits 0 only when the job succeeded.

    python launch/submit.py --address http://HEAD:8265 launch/smoke.yaml --out /shared/runs/smoke

Token authentication (Ray 2.60): when the cluster runs with token authentication, the
client must send the cluster's token, which ``ray job submit`` does only under
``RAY_AUTH_MODE=token``. If ``RAY_AUTH_MODE`` is unset and a token is found
(``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``), this wrapper
sets ``RAY_AUTH_MODE=token`` for the submission; a token sent to a cluster without
authentication is ignored. See docs/cluster.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from natsray.engine.cluster import AUTH_HINT, token_available, token_problem

__all__ = ["SubmitError", "auth_env", "build_command", "main"]

REPO = Path(__file__).resolve().parents[1]
RUNTIME_ENV = Path(__file__).resolve().parent / "runtime_env.yaml"


class SubmitError(SystemExit):
    """Bad input or a refused submission: ``main`` prints its one-line message and exits 2."""


def auth_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for ``ray job submit``: ``RAY_AUTH_MODE=token`` added when a token exists.

    Raises:
        SystemExit: one line when ``RAY_AUTH_MODE=token`` is set but no token can be found.
    """
    result = dict(env)
    problem = token_problem(result)
    if problem:
        raise SubmitError(f"submit: {problem}")
    if result.get("RAY_AUTH_MODE") is None and token_available(result):
        result["RAY_AUTH_MODE"] = "token"
    return result


def _config_in_working_dir(config: str, working_dir: Path) -> str:
    """CONFIG as a path relative to the uploaded working directory (the job's current directory)."""
    path = Path(config)
    absolute = path if path.is_absolute() else Path.cwd() / path
    if not absolute.is_file() and not path.is_absolute() and (working_dir / path).is_file():
        absolute = working_dir / path
    if not absolute.is_file():
        raise SubmitError(f"submit: CONFIG {config}: no such file")
    try:
        return absolute.resolve().relative_to(working_dir.resolve()).as_posix()
    except ValueError:
        raise SubmitError(
            f"submit: CONFIG {config} is outside --working-dir {working_dir}: only that directory is uploaded"
        ) from None


def build_command(args: argparse.Namespace) -> list[str]:
    """The ``ray job submit`` command line for the parsed arguments."""
    working_dir = Path(args.working_dir)
    if not working_dir.is_dir():
        raise SubmitError(f"submit: --working-dir {args.working_dir}: no such directory")
    if not Path(args.runtime_env).is_file():
        raise SubmitError(f"submit: --runtime-env {args.runtime_env}: no such file")
    config = _config_in_working_dir(args.config, working_dir)
    command = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit"]
    if args.address:
        command += ["--address", args.address]
    command += [
        "--working-dir", str(working_dir),
        "--runtime-env", str(args.runtime_env),
        "--submission-id", args.submission_id,
    ]  # fmt: skip
    if args.entrypoint_num_cpus is not None:
        command += ["--entrypoint-num-cpus", str(args.entrypoint_num_cpus)]
    if not args.wait:
        command.append("--no-wait")
    return [*command, "--", "natsray", "run", config, *args.run_args]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch/submit.py", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    parser.add_argument(
        "--address",
        help="job server, e.g. http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS, then RAY_ADDRESS)",
    )
    parser.add_argument(
        "--working-dir", default=str(REPO), help="directory uploaded (default: the repository)"
    )
    parser.add_argument(
        "--runtime-env", default=str(RUNTIME_ENV), help="runtime env YAML (default: %(default)s)"
    )
    parser.add_argument("--submission-id", default=f"natsray-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    parser.add_argument("--entrypoint-num-cpus", type=float, help="CPUs reserved for the driver")
    parser.add_argument("--wait", action="store_true", help="follow the logs until the job ends")
    parser.add_argument("--dry-run", action="store_true", help="print the ray job submit command only")
    parser.add_argument("config", metavar="CONFIG", help="experiment YAML, inside --working-dir")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="more 'natsray run' arguments")
    return parser


def _exception_line(lines: Sequence[str]) -> str:
    """The last exception line of a Python traceback (``Name: message`` after a frame), else its last line."""
    found = ""
    for previous, line in zip(["  ", *lines], lines, strict=False):
        if line[:1].strip() and previous.startswith(" ") and ":" in line and not line.startswith("Traceback"):
            found = line
    return (found or next((line for line in reversed(lines) if line.strip()), "")).strip()


def _submit(command: Sequence[str], env: Mapping[str, str]) -> tuple[int, str | None]:
    """Run ``ray job submit``: its output passed through, except a Python traceback on its stderr, which
    is held back; ``(exit code, the traceback's exception line or None)``."""
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    held: list[str] = []
    for line in process.stderr:
        if held or line.startswith("Traceback (most recent call last):"):
            held.append(line.rstrip("\n"))
        else:
            sys.stderr.write(line)
            sys.stderr.flush()
    code = process.wait()
    if held and code == 0:  # not an error after all: show it as it was
        sys.stderr.write("\n".join(held) + "\n")
    return code, _exception_line(held) if held else None


def main(argv: Sequence[str] | None = None) -> int:
    """Submit the job; returns ``ray job submit``'s exit code (with ``--wait``: 0 iff the job succeeded).

    A bad argument, a missing token or a submission the cluster refuses (unreachable job server,
    missing authentication, a head whose dashboard agent did not start) is one line on stderr, exit 2.
    """
    try:
        return _main(argv)
    except SubmitError as exc:
        print(exc.code, file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    command = build_command(args)
    env = auth_env(os.environ)
    if args.dry_run:
        print(shlex.join(command))
        return 0
    print(f"job id: {args.submission_id}", flush=True)
    code, error = _submit(command, env)
    if code != 0 and error is not None:
        where = (
            args.address
            or env.get("RAY_API_SERVER_ADDRESS")
            or env.get("RAY_ADDRESS")
            or "the default address"
        )
        hint = (
            f"the cluster uses token authentication: {AUTH_HINT}"
            if "auth" in error.lower()
            else "check that the head's dashboard and its agent are up"
        )
        raise SubmitError(f"submit: ray job submit to {where} failed: {error}; {hint} (docs/cluster.md)")
    if code == 0 and not args.wait:
        address = f" --address {args.address}" if args.address else ""
        print(f"follow: ray job logs --follow{address} {args.submission_id}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
