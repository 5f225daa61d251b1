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

from natsray.engine.cluster import token_available

__all__ = ["auth_env", "build_command", "main"]

REPO = Path(__file__).resolve().parents[1]
RUNTIME_ENV = Path(__file__).resolve().parent / "runtime_env.yaml"


def auth_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for ``ray job submit``: ``RAY_AUTH_MODE=token`` added when a token exists.

    Raises:
        SystemExit: one line when ``RAY_AUTH_MODE=token`` is set but no token can be found.
    """
    result = dict(env)
    mode = result.get("RAY_AUTH_MODE")
    if mode is None and token_available(result):
        result["RAY_AUTH_MODE"] = "token"
    elif mode == "token" and not token_available(result):
        raise SystemExit(
            "submit: RAY_AUTH_MODE=token but no token: set RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, "
            "or copy the cluster's ~/.ray/auth_token (on the head: ray get-auth-token)"
        )
    return result


def _config_in_working_dir(config: str, working_dir: Path) -> str:
    """CONFIG as a path relative to the uploaded working directory (the job's current directory)."""
    path = Path(config)
    absolute = path if path.is_absolute() else Path.cwd() / path
    if not absolute.is_file() and not path.is_absolute() and (working_dir / path).is_file():
        absolute = working_dir / path
    if not absolute.is_file():
        raise SystemExit(f"submit: CONFIG {config}: no such file")
    try:
        return absolute.resolve().relative_to(working_dir.resolve()).as_posix()
    except ValueError:
        raise SystemExit(
            f"submit: CONFIG {config} is outside --working-dir {working_dir}: only that directory is uploaded"
        ) from None


def build_command(args: argparse.Namespace) -> list[str]:
    """The ``ray job submit`` command line for the parsed arguments."""
    working_dir = Path(args.working_dir)
    if not working_dir.is_dir():
        raise SystemExit(f"submit: --working-dir {args.working_dir}: no such directory")
    if not Path(args.runtime_env).is_file():
        raise SystemExit(f"submit: --runtime-env {args.runtime_env}: no such file")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Submit the job; returns ``ray job submit``'s exit code (with ``--wait``: 0 iff the job succeeded)."""
    args = _parser().parse_args(argv)
    command = build_command(args)
    env = auth_env(os.environ)
    if args.dry_run:
        print(shlex.join(command))
        return 0
    print(f"job id: {args.submission_id}", flush=True)
    code = subprocess.call(command, env=env)
    if code == 0 and not args.wait:
        address = f" --address {args.address}" if args.address else ""
        print(f"follow: ray job logs --follow{address} {args.submission_id}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
