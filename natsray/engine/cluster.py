"""Reaching a Ray cluster, in bounded time, and checking that it can host the run's actors.

:func:`connect_ray` starts a local Ray or joins one (``--address``, ``ray.address``,
``RAY_ADDRESS``, in that order), with Ray 2.60's token authentication handled as
``launch/submit.py`` does: when ``RAY_AUTH_MODE`` is unset and a token exists
(``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), token mode is switched
on for this process. Ray itself retries an address where nothing listens forever, and a head that
refuses the token for ~20 s of warnings; here the address is probed first for at most
``ray.connect_timeout_s`` seconds, then asked once whether it takes the token, and either fails with
one line naming it (a job server's ``http://`` address too). Inside a Ray job the job's runtime env
wins over the config's (:func:`_driver_runtime_env`); a run's or sweep's directory inside a local
``working_dir`` is never uploaded.

:func:`check_resources` compares what the run asks for (``resources.actors`` actors of
``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs) with the nodes of a cluster (or of this
machine: :func:`local_nodes`, used by ``natsray validate``). Ray would keep an actor no node
can host pending forever; :func:`wait_for_resources` instead fails with one line naming the
resource, the amount asked and the amount available, after waiting at most
``ray.resource_wait_s`` for a joined (possibly autoscaling) cluster to grow.

Inside :func:`sigterm_interrupts` (a run or a sweep, on Ray or in this process), SIGTERM (``scancel``,
a time limit, ``timeout``) interrupts the driver like Ctrl-C, at a moment its state is consistent, instead
of Ray's abort or the default silent exit; the SIGTERM handler it replaced is back when it ends.
:func:`wait_for_nodes` (``python -m natsray.engine.cluster wait-nodes ADDRESS COUNT [TIMEOUT_S]``) is
the bounded wait of
``launch/slurm.sbatch`` for its Ray nodes. Ray is imported only inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from natsray.config import ExperimentConfig

__all__ = [
    "ClusterError",
    "NodeCapacity",
    "actor_runtime_env",
    "check_resources",
    "connect_ray",
    "consistent_interrupt",
    "gpu_sharing_note",
    "local_nodes",
    "local_ray_started_here",
    "local_token_mode",
    "probe_address",
    "sigterm_interrupts",
    "stop_local_ray",
    "take_sigterm",
    "token_available",
    "wait_for_nodes",
    "wait_for_ray_stop",
    "wait_for_resources",
]

NodeCapacity = Mapping[str, float]
"""Resources of one node, Ray's names: ``{"CPU": 8.0, "GPU": 1.0}``."""

_EPS = 1e-9


class ClusterError(ValueError):
    """A cluster that cannot be reached or cannot host the run: one line, exit code 2."""


AUTH_HINT = (
    "set RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or copy the cluster's ~/.ray/auth_token "
    "(on the head: ray get-auth-token)"
)
"""Where a Ray token goes: the end of every one-line token error (``natsray run``, ``launch/submit.py``)."""


def _token(env: Mapping[str, str]) -> tuple[str, str] | None:
    """``(token, its source)``: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``."""
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return env["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = env.get("RAY_AUTH_TOKEN_PATH") or str(Path(env.get("HOME", Path.home())) / ".ray" / "auth_token")
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return (token, path) if token else None


def token_available(env: Mapping[str, str] | None = None) -> bool:
    """Whether a Ray token is set: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``."""
    return _token(os.environ if env is None else env) is not None


def token_problem(env: Mapping[str, str] | None = None) -> str | None:
    """The one-line problem when ``RAY_AUTH_MODE=token`` is set but no token can be found, else None
    (shared by ``natsray run`` joining a cluster and ``launch/submit.py``)."""
    env = os.environ if env is None else env
    if env.get("RAY_AUTH_MODE") == "token" and not token_available(env):
        return f"RAY_AUTH_MODE=token but no token: {AUTH_HINT}"
    return None


def _set_token_mode() -> None:
    """``RAY_AUTH_MODE=token`` for this process and its children, as Ray does for a local cluster."""
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import Config

    Config.initialize("")  # Ray caches its config: make this process see token mode too


def local_token_mode() -> None:
    """Before a local ``ray.init()``: token authentication set up as Ray would, without the warning
    Ray prints about it (what ``natsray run`` does; nothing when ``RAY_AUTH_MODE`` is set)."""
    if "RAY_AUTH_MODE" not in os.environ:
        _set_token_mode()


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; None when it has no port."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def probe_address(address: str, timeout: float) -> None:
    """Wait until ``address`` accepts TCP connections, for at most ``timeout`` seconds.

    Args:
        address: ``HOST:PORT`` (Ray's GCS) or ``ray://HOST:PORT`` (Ray client).
        timeout: Seconds; 0 tries once.

    Raises:
        ClusterError: one line naming the address when nothing answers in time.
    """
    scheme = address.split("://", 1)[0].lower() if "://" in address else ""
    if scheme in ("http", "https"):
        raise ClusterError(
            f"ray address {address}: an HTTP address is the job server's (for ray job submit); a driver "
            "joins the head's GCS address HOST:PORT (e.g. 127.0.0.1:6379)"
        )
    target = _host_port(address)
    if target is None or scheme not in ("", "ray"):
        raise ClusterError(f"ray address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            with socket.create_connection(target, timeout=max(1.0, min(5.0, remaining))):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"ray address {address}: nothing answers there after {timeout:g} s "
                    f"({exc.strerror or exc}); is the Ray head running? (timeout: ray.connect_timeout_s)"
                ) from None
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _prepare_join(address: str, timeout: float) -> None:
    """Before ``ray.init(address)``: probe the address, switch token mode on when a token exists, and
    check that the head takes this process's token (Ray itself retries a refused one for ~20 s)."""
    probe_address(address, timeout)
    problem = token_problem()
    if problem:
        raise ClusterError(f"ray address {address}: {problem}")
    if "RAY_AUTH_MODE" not in os.environ and token_available():
        _set_token_mode()
    if not address.startswith("ray://"):
        _check_token(address, timeout)


def _check_token(address: str, timeout: float) -> None:
    """Ask the GCS at ``address`` for its cluster id with this process's token (if any): one line when
    the head refuses it. Any other failure is left to ``ray.init``, which names it."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # pragma: no cover - both come with ray
        return
    mode = os.environ.get("RAY_AUTH_MODE", "token")
    found = _token(os.environ) if mode == "token" else None
    metadata = (("authorization", f"Bearer {found[0]}"),) if found else ()
    try:
        with grpc.insecure_channel(address) as channel:
            stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
            stub.GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=max(1.0, timeout), metadata=metadata
            )
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
            return
        if mode != "token":
            raise ClusterError(
                f"ray address {address}: the cluster uses token authentication but RAY_AUTH_MODE={mode}: "
                "set RAY_AUTH_MODE=token (or unset it)"
            ) from None
        if found:
            raise ClusterError(
                f"ray address {address}: the cluster rejected the token from {found[1]}: {AUTH_HINT}"
            ) from None
        raise ClusterError(
            f"ray address {address}: the cluster uses token authentication and no token was found: "
            f"{AUTH_HINT}; natsray then sets RAY_AUTH_MODE=token itself"
        ) from None


@contextlib.contextmanager
def _ray_address(address: str | None) -> Iterator[None]:
    """``RAY_ADDRESS=address`` while Ray starts: Ray lets RAY_ADDRESS win over its address argument."""
    old = os.environ.get("RAY_ADDRESS")
    if address:
        os.environ["RAY_ADDRESS"] = address
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = old


def _resolve_auto() -> str:
    from ray._private.services import canonicalize_bootstrap_address

    try:
        found = canonicalize_bootstrap_address("auto")
    except Exception:
        found = None
    if not found:
        raise ClusterError("ray address auto: no Ray cluster started on this machine (ray start --head)")
    return found


def _job_runtime_env() -> dict[str, Any] | None:
    """The runtime env of the Ray job this driver runs in (``ray job submit``), else None.

    Ray's job supervisor hands it to the entrypoint in ``RAY_JOB_CONFIG_JSON_ENV_VAR``; ``ray.init``
    merges it with its own ``runtime_env`` and refuses any key both set (``env_vars``: any variable).
    """
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

    text = os.environ.get(RAY_JOB_CONFIG_JSON_ENV_VAR)
    if not text:
        return None
    try:
        env = json.loads(text).get("runtime_env")
    except (ValueError, AttributeError):
        return None
    return env if isinstance(env, dict) else {}


def _driver_runtime_env(runtime_env: Mapping[str, Any] | None, output: Path | None) -> dict[str, Any]:
    """The ``runtime_env`` natsray passes to ``ray.init``: the config's, where

    * inside a Ray job, the keys (and ``env_vars`` variables) the job already sets are left out: the
      job's win (its ``working_dir`` / ``py_modules`` already ship the user's code, uploaded once by
      ``ray job submit``; Ray refuses the same key twice);
    * a local ``working_dir`` holding ``output`` (the run's or the sweep's directory) gets it in
      ``excludes``: natsray's results are never uploaded (each of its output directories also holds a
      ``.gitignore`` of ``*``, which Ray honours, as git does).
    """
    env = dict(runtime_env or {})
    job = _job_runtime_env()
    if job is not None:
        env = {key: value for key, value in env.items() if key == "env_vars" or key not in job}
        if "env_vars" in env:
            taken = job.get("env_vars") or {}
            env["env_vars"] = {k: v for k, v in env["env_vars"].items() if k not in taken}
            if not env["env_vars"]:
                del env["env_vars"]
        if "working_dir" not in env and "py_modules" not in env:
            env.pop("excludes", None)
    return _exclude_output(env, output)


def _exclude_output(env: dict[str, Any], output: str | Path | None) -> dict[str, Any]:
    """``env`` with ``output`` added to its ``excludes`` when it lies inside its local ``working_dir``."""
    working_dir = env.get("working_dir")
    if output is None or not isinstance(working_dir, str) or "://" in working_dir:
        return env
    try:
        inside = Path(output).resolve().relative_to(Path(working_dir).resolve())
    except ValueError:
        return env
    if inside.parts:
        env["excludes"] = [*env.get("excludes", []), f"/{inside.as_posix()}/"]
    return env


def _error_line(exc: BaseException) -> str:
    """One line for an exception of ``ray.init``: its first line, except for a runtime env that could
    not be set up, where the first line is only 'Failed to set up runtime environment.' and the next
    one says why (e.g. ``Package size (749.79MiB) exceeds the maximum size of 512.00MiB``)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    if lines[0].startswith("Failed to set up runtime environment") and len(lines) > 1:
        cause = lines[1].split(". To exclude large files", 1)[0]
        hint = ""
        if "exceeds the maximum size" in cause:
            hint = (
                "; leave large files out with ray.runtime_env.excludes, a .gitignore or a .rayignore "
                "(docs/cluster.md)"
            )
        return f"ray.runtime_env: {cause}{hint}"
    return lines[0]


def connect_ray(config: ExperimentConfig, address: str | None, output: str | Path | None = None) -> bool:
    """Initialise Ray unless it already is: join ``address`` or start a local Ray, then check resources.

    Args:
        config: Its ``ray`` section (runtime env, timeouts, dashboard) and ``resources``.
        address: ``--address``; default ``config.ray.address``, then ``RAY_ADDRESS``, else a local
            Ray (``address="local"``: always a fresh instance, never a stray head on this machine).
        output: The directory natsray writes to (default ``config.output.dir``): left out of the
            upload of a local ``working_dir`` that holds it (see :func:`_driver_runtime_env`).

    A local Ray that an earlier run is still stopping (:func:`stop_local_ray`) is waited for first.

    Returns:
        True when this call initialised Ray (the caller shuts it down: :func:`stop_local_ray`). Inside
        :func:`sigterm_interrupts`, the SIGTERM handler ``ray.init`` installs (``sys.exit``) is
        replaced by natsray's again.

    Raises:
        ClusterError: one line, when the cluster cannot be reached within
            ``ray.connect_timeout_s`` or cannot host the run's actors (see :func:`wait_for_resources`).
    """
    import ray

    wait_for_ray_stop()
    if ray.is_initialized():
        return False
    address = address or config.ray.address or os.environ.get("RAY_ADDRESS") or None
    # Ray's INFO lines ("Started a local Ray instance", runtime_env packaging) are noise on a user's
    # terminal; warnings and the actors' own output still come through.
    kwargs: dict[str, Any] = {"log_to_driver": True, "logging_level": logging.WARNING}
    runtime_env = _driver_runtime_env(config.ray.runtime_env, Path(output or config.output.dir))
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    if address:
        target = _resolve_auto() if address == "auto" else address
        _prepare_join(target, config.ray.connect_timeout_s)
    elif "RAY_AUTH_MODE" not in os.environ:
        _set_token_mode()  # what a local ray.init() does anyway, minus a warning nobody can act on
    try:
        if address:
            with _ray_address(target):
                ray.init(address=target, **kwargs)
        else:
            ray.init(
                address="local",
                num_cpus=config.resources.num_cpus,
                include_dashboard=config.ray.include_dashboard,
                dashboard_host=config.ray.dashboard_host,
                **kwargs,
            )
    except Exception as exc:
        where = f"cluster {address}" if address else "a local Ray instance"
        raise ClusterError(f"ray.address: cannot start or join {where}: {_error_line(exc)}") from None
    try:
        wait_for_resources(config, _ray_nodes, config.ray.resource_wait_s if address else 0.0)
    except ClusterError:
        ray.shutdown()
        raise
    if _sigterm["active"] and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # ray.init installed its own (sys.exit)
    if not address:
        _STARTED_HERE.clear()
        _STARTED_HERE.append(ray.get_runtime_context().gcs_address)
        note = gpu_sharing_note(config)
        if note:
            print(note, file=sys.stderr)
    return True


_STOPPING: list[threading.Thread] = []
"""Threads stopping a local Ray (:func:`stop_local_ray`), joined by :func:`wait_for_ray_stop`."""

_STOP_WAIT_S = 60.0
"""The longest :func:`wait_for_ray_stop` waits for one (``ray.shutdown`` of a local Ray took 1.1-1.6 s
on the idle 2-core machine, 2026-12-05)."""


def stop_local_ray(*, background: bool = False) -> None:
    """``ray.shutdown()`` of the local Ray that :func:`connect_ray` started: now, or on a thread.

    ``ray.shutdown`` stops Ray's processes one by one, giving each up to 1 s to exit (1.1-1.6 s in
    all here). In the ``background`` its wait overlaps what the caller does next (a finished run's
    checkpoint, CSV and plots); :func:`wait_for_ray_stop` joins it, and so do :func:`connect_ray` and
    the interpreter's exit (the thread is not a daemon). The caller must hold no Ray object (actor
    handle, ``ObjectRef``) by then: one freed while the thread shuts the driver down would be freed
    on a driver halfway down.
    """
    import ray

    if not background:
        ray.shutdown()
        return
    import ray.dag.compiled_dag_node  # what ray.shutdown imports: here, not on two threads at once

    thread = threading.Thread(target=_shutdown_quietly, name="natsray-ray-stop")
    thread.start()
    _STOPPING.append(thread)


def _shutdown_quietly() -> None:
    import ray

    try:
        ray.shutdown()
    except Exception as exc:  # the run is over: a line, not a traceback
        print(f"natsray: warning: stopping the local Ray: {_error_line(exc)}", file=sys.stderr)


def wait_for_ray_stop() -> None:
    """Join the threads of :func:`stop_local_ray`, each for at most ``_STOP_WAIT_S`` seconds."""
    while _STOPPING:
        _STOPPING.pop().join(_STOP_WAIT_S)


def gpu_sharing_note(config: ExperimentConfig) -> str | None:
    """One line when the run's actors share this machine's GPUs (``0 < gpus_per_actor < 1``) while NVIDIA's
    Multi-Process Service is not running here; else None.

    Without MPS the GPU time-slices processes: their kernels never run at the same time, so actors that
    share a GPU add little (an H200, 2026-12-04: 8 actors gave 1.2 times one training's images/s, 2.2
    times with MPS; docs/training.md, "Sharing a GPU"). MPS is found by its control pipe,
    ``$CUDA_MPS_PIPE_DIRECTORY/control`` (default ``/tmp/nvidia-mps/control``).
    """
    share = config.resources.gpus_per_actor
    if not 0 < share < 1 or config.engine.mode == "simulated" or config.engine.in_process:
        return None
    pipes = Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps")
    if (pipes / "control").exists():
        return None
    return (
        f"natsray: note: resources.gpus_per_actor {share:g} shares each GPU among {int(1 / share + _EPS)} "
        "trainings, but NVIDIA MPS is not running here, so the GPU runs them one at a time: start it with "
        "'nvidia-cuda-mps-control -d' first (docs/training.md, \"Sharing a GPU\")"
    )


_STARTED_HERE: list[str] = []
"""The GCS address of the local Ray that :func:`connect_ray` last started in this process."""


def local_ray_started_here() -> bool:
    """True when the Ray this process is connected to is a local one that :func:`connect_ray`
    started here (not a cluster it joined): its CPUs are this machine's, the driver's among them."""
    import ray

    return (
        bool(_STARTED_HERE)
        and ray.is_initialized()
        and ray.get_runtime_context().gcs_address in _STARTED_HERE
    )


def actor_runtime_env(
    runtime_env: Mapping[str, Any] | None, output: str | Path | None = None
) -> dict[str, Any] | None:
    """``runtime_env`` for the actors of a Ray session natsray joined but did not start.

    Such a session (``ray.init`` in a notebook or a script) has its own job-level runtime env, not the
    config's; the actors are given the config's instead, with its local ``working_dir`` / ``py_modules``
    uploaded first as ``ray.init`` does for a job (Ray accepts local paths only there), without
    ``output`` (the run's directory) when the ``working_dir`` holds it.

    Raises:
        ClusterError: one line, when the local paths cannot be uploaded.
    """
    if not runtime_env:
        return None
    env = _exclude_output(dict(runtime_env), output)
    if not any(key in env for key in ("working_dir", "py_modules")):
        return env
    try:
        import ray
        from ray._private.runtime_env.py_modules import upload_py_modules_if_needed
        from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

        scratch = ray._private.worker.global_worker.node.get_runtime_env_dir_path()
        env = upload_py_modules_if_needed(env, include_gitignore=True, scratch_dir=scratch)
        env = upload_working_dir_if_needed(env, include_gitignore=True, scratch_dir=scratch)
    except Exception as exc:
        raise ClusterError(
            f"ray.runtime_env: cannot ship working_dir / py_modules to the actors of this Ray session "
            f"({_error_line(exc)}); pass the runtime_env to ray.init, or let natsray start Ray"
        ) from None
    env.pop("excludes", None)
    return env


_DEFER_LIMIT = 100
"""Re-deliveries of a SIGTERM (0.1 s apart) before it interrupts wherever the driver is."""

_sigterm: dict[str, Any] = {
    "active": False,  # inside a sigterm_interrupts scope (its handler installed)
    "requested": False,  # a SIGTERM arrived in this scope
    "raised": False,  # ... and its interrupt was raised (later re-deliveries are then ignored)
    "deferred": 0,  # re-deliveries so far
    "scope": 0,  # scopes entered in this process: a re-delivery from an ended scope is dropped
    "timer": None,  # the pending re-delivery
    "in_ray": False,  # the interrupt was raised inside Ray (where Ray may turn it into a KeyboardInterrupt)
}


class ConsistentInterrupt(KeyboardInterrupt):
    """An interrupt raised where the engine's state is consistent (the driver waiting inside Ray): the
    runner checkpoints that state on the way out. Any other ``KeyboardInterrupt`` (Ctrl-C lands wherever
    the driver is, e.g. halfway through a strategy's ``ask``) is not checkpointed: the run resumes from
    its last periodic checkpoint and the journal, as after a crash."""


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM -> KeyboardInterrupt, raised only while the driver is inside Ray (waiting on it).

    There natsray's own state is consistent (a result is either delivered or still outstanding),
    so the checkpoint written on the way out matches the journal; inside natsray code (all of a run
    without Ray) the signal is sent again 0.1 s later (at most :data:`_DEFER_LIMIT` times) until the
    runner takes it (:func:`take_sigterm`) after its next delivered batch.
    """
    if _sigterm["raised"]:
        return
    _sigterm["requested"] = True  # the runner raises it at its next consistent point (take_sigterm)
    if not _sigterm["active"]:  # the scope is ending: it raises the interrupt itself
        return
    ray = sys.modules.get("ray")  # a run or a sweep without Ray never imports it (not here either)
    in_ray = (
        ray is not None
        and frame is not None
        and frame.f_code.co_filename.startswith(str(Path(ray.__file__).parent))
    )
    if in_ray:
        _sigterm["raised"] = _sigterm["in_ray"] = True
        raise ConsistentInterrupt
    if _sigterm["deferred"] >= _DEFER_LIMIT:
        _sigterm["raised"] = True
        raise KeyboardInterrupt
    _sigterm["deferred"] += 1
    timer = threading.Timer(0.1, _redeliver, (signum, _sigterm["scope"]))
    timer.daemon = True
    _sigterm["timer"] = timer
    timer.start()


_REDELIVERING = threading.Lock()
"""Held by a re-delivery from its check to its kill: a scope that ends waits for it (no re-delivery
lands after the scope has put back the handler it replaced, e.g. the default one, which ends the process)."""


def _redeliver(signum: int, scope: int) -> None:
    with _REDELIVERING:
        if _sigterm["active"] and _sigterm["scope"] == scope:
            os.kill(os.getpid(), signum)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM (``scancel``, a time limit, ``kill``) stops a run like Ctrl-C: checkpointed, exit 130.

    Ray's driver otherwise aborts on SIGTERM (its failure handler prints a stack and dumps core), and a
    run or a sweep without Ray ends at once with 143 and no message; the journal would still let
    ``natsray resume`` continue, but from an older checkpoint. The runner enters it for every run
    (in-process, simulated, on Ray), a sweep once for all of its runs. The
    signal is raised as :class:`ConsistentInterrupt` while the driver waits inside Ray, or where the
    runner next calls :func:`take_sigterm`. Enter the scope before :func:`connect_ray`, which
    installs the handler again over the one ``ray.init`` sets (``sys.exit``).

    Each scope starts afresh (a SIGTERM that stopped an earlier run in this process is spent) and
    ends by putting back the SIGTERM handler the process had when it began (``ray.shutdown`` leaves
    SIGTERM at the system's default otherwise): between runs, and in a run outside any scope, a
    SIGTERM does what it does in this process without natsray (by default it ends the process at
    once; a notebook's or a script's own handler gets it). A SIGTERM that arrived inside and was not
    raised yet (the body ended before its next consistent point) is raised as
    :class:`ConsistentInterrupt` as the scope ends, so none is lost (unless the body ends with an
    exception, which stops the run anyway). A scope inside another one, or entered outside the main
    thread or in a Ray worker, changes nothing.

    Raises:
        ConsistentInterrupt: on leaving, when a SIGTERM arrived inside and was not raised yet.
    """
    if _sigterm["active"] or threading.current_thread() is not threading.main_thread() or _in_ray_worker():
        yield
        return
    _sigterm.update(
        active=True, requested=False, raised=False, deferred=0, scope=_sigterm["scope"] + 1, in_ray=False
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        _sigterm["active"] = False  # a SIGTERM from here on is only recorded, never raised mid-way
        with _REDELIVERING:  # a re-delivery under way lands while this scope's handler is installed
            timer, _sigterm["timer"] = _sigterm["timer"], None
        if timer is not None:
            timer.cancel()
        # a handler installed outside Python reads as None: the default is the closest to it
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    if _sigterm["requested"] and not _sigterm["raised"]:
        _sigterm["raised"] = True
        raise ConsistentInterrupt


def consistent_interrupt(exc: BaseException) -> bool:
    """True when ``exc`` stopped the run at a point where its state is consistent: a
    :class:`ConsistentInterrupt`, or the plain ``KeyboardInterrupt`` Ray made of one.

    A signal that arrives while the driver blocks in ``ray.wait`` / ``ray.get`` (most of a training
    run) has its handler run from Ray's C++ wait, and Ray raises ``KeyboardInterrupt()`` for whatever
    the handler raised: the SIGTERM handler's :class:`ConsistentInterrupt` arrives as a plain
    ``KeyboardInterrupt`` (Ray 2.60), recognised here by the handler's note that it raised it inside
    Ray. A Ctrl-C is never consistent (it lands wherever the driver is).
    """
    return isinstance(exc, ConsistentInterrupt) or (isinstance(exc, KeyboardInterrupt) and _sigterm["in_ray"])


def _in_ray_worker() -> bool:
    """True in a Ray worker process (a run started by a Ray task): Ray's own SIGTERM handling stays."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return False
    return ray._private.worker.global_worker.mode == ray.WORKER_MODE


def take_sigterm() -> bool:
    """True (once) when a SIGTERM is waiting to interrupt the run: the caller, at a point where its state
    is consistent, raises :class:`ConsistentInterrupt` (a driver busy in natsray code would otherwise
    meet the signal only inside Ray, or after :data:`_DEFER_LIMIT` tries, unchecked)."""
    if _sigterm["active"] and _sigterm["requested"] and not _sigterm["raised"]:
        _sigterm["raised"] = True
        return True
    return False


def _ray_nodes() -> list[NodeCapacity]:
    import ray

    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def local_nodes(num_cpus: int | None = None) -> list[NodeCapacity]:
    """This machine as one node: ``num_cpus`` (default all cores) and the GPUs ``nvidia-smi -L`` lists."""
    gpus = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            gpus = sum(line.startswith("GPU ") for line in listing.stdout.splitlines())
        except (OSError, subprocess.TimeoutExpired):
            gpus = 0
    if visible is not None:
        gpus = min(gpus, len([d for d in visible.split(",") if d.strip()]))
    return [{"CPU": float(num_cpus or os.cpu_count() or 1), "GPU": float(gpus)}]


def _fits(node: NodeCapacity, asks: Mapping[str, float]) -> int:
    """How many actors asking ``asks`` one node can host."""
    counts = [math.floor(node.get(name, 0.0) / amount + _EPS) for name, amount in asks.items() if amount > 0]
    return min(counts) if counts else sys.maxsize


def check_resources(
    config: ExperimentConfig, nodes: Sequence[NodeCapacity], where: str = "the cluster"
) -> str | None:
    """None when ``nodes`` can host all ``resources.actors`` actors at once, else the reason in one line.

    Args:
        config: The run; its ``resources`` section is checked.
        nodes: Resources of each alive node (Ray's names ``CPU``, ``GPU``).
        where: Names the nodes in the message (``the cluster``, ``this machine``).

    Returns:
        e.g. ``resources.gpus_per_actor: 1 GPU asked per actor, 0 available on any node of this
        machine (2 CPU, 0 GPU in all, 1 node)``; None when every actor fits.
    """
    res = config.resources
    asks = {"CPU": res.cpus_per_actor, "GPU": res.gpus_per_actor}
    fields = {"CPU": "cpus_per_actor", "GPU": "gpus_per_actor"}
    totals = {name: sum(node.get(name, 0.0) for node in nodes) for name in asks}
    have = f"{totals['CPU']:g} CPU, {totals['GPU']:g} GPU in all, {len(nodes)} node(s)"
    for name, amount in asks.items():
        largest = max((node.get(name, 0.0) for node in nodes), default=0.0)
        if amount > largest + _EPS:
            return (
                f"resources.{fields[name]}: {amount:g} {name} asked per actor, "
                f"{largest:g} available on any node of {where} ({have})"
            )
    hosted = sum(min(_fits(node, asks), res.actors) for node in nodes)
    if hosted < res.actors:
        asked = " + ".join(f"{res.actors * amount:g} {name}" for name, amount in asks.items() if amount > 0)
        return (
            f"resources.actors: {res.actors} actors asked ({asked}), {where} has room for {hosted} ({have})"
        )
    return None


def wait_for_resources(
    config: ExperimentConfig, nodes: Callable[[], Sequence[NodeCapacity]], wait_s: float
) -> None:
    """Check :func:`check_resources` against ``nodes()``, re-checking for at most ``wait_s`` seconds.

    Args:
        config: The run (its ``resources``; simulated / in-process runs ask for nothing).
        nodes: Reads the cluster's alive nodes.
        wait_s: Seconds an autoscaling cluster is given to grow (0: check once).

    Raises:
        ClusterError: the one-line reason of :func:`check_resources` once ``wait_s`` has passed.
    """
    if config.engine.mode == "simulated" or config.engine.in_process:
        return
    deadline = time.monotonic() + wait_s
    reason = check_resources(config, nodes())
    if reason and wait_s > 0:
        print(f"natsray: waiting up to {wait_s:g} s for the cluster to grow: {reason}", file=sys.stderr)
    while reason and time.monotonic() < deadline:
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        reason = check_resources(config, nodes())
    if reason:
        waited = f" (after waiting {wait_s:g} s: ray.resource_wait_s)" if wait_s > 0 else ""
        raise ClusterError(reason + waited)


def wait_for_nodes(address: str, count: int, timeout: float) -> list[NodeCapacity]:
    """Join ``address`` and wait until ``count`` nodes are alive, for at most ``timeout`` seconds in all.

    Used by ``launch/slurm.sbatch`` while the job's Ray nodes start
    (``python -m natsray.engine.cluster wait-nodes ADDRESS COUNT [TIMEOUT]``).

    Returns:
        The alive nodes' resources.

    Raises:
        ClusterError: one line, when the head does not answer or too few nodes join in time.
    """
    import ray

    deadline = time.monotonic() + timeout
    _prepare_join(address, timeout)
    with _ray_address(address):
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        while len(nodes := _ray_nodes()) < count:
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"ray address {address}: {len(nodes)} of {count} nodes joined in {timeout:g} s"
                )
            time.sleep(1.0)
        return nodes
    finally:
        ray.shutdown()


def _main(argv: Sequence[str]) -> int:
    if len(argv) not in (3, 4) or argv[0] != "wait-nodes":
        print(
            "usage: python -m natsray.engine.cluster wait-nodes ADDRESS COUNT [TIMEOUT_S=300]",
            file=sys.stderr,
        )
        return 2
    try:
        nodes = wait_for_nodes(argv[1], int(argv[2]), float(argv[3]) if len(argv) == 4 else 300.0)
    except ClusterError as exc:
        print(f"natsray: error: {exc}", file=sys.stderr)
        return 1
    cpus, gpus = (sum(node.get(name, 0.0) for node in nodes) for name in ("CPU", "GPU"))
    print(f"{len(nodes)} Ray node(s) up at {argv[1]}: {cpus:g} CPU, {gpus:g} GPU")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
