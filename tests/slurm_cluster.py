"""A real single-node SLURM cluster for tests, built from Debian's packages on this machine.

:class:`SlurmCluster` starts ``munged``, ``slurmctld`` and ``slurmd`` in the foreground (so their
PIDs are known and only they are stopped), each with its own key, socket, ports, state and log
directory under one temporary directory, and a minimal ``slurm.conf`` naming this host as the
only node. Clients (``sbatch``, ``squeue``, ``scancel``, ``scontrol``) find it through
``SLURM_CONF`` in :attr:`SlurmCluster.env`. It needs root (``SlurmUser=root``) and the packages
``slurmctld slurmd slurm-client munge`` (``.ci/run`` installs them when it can);
:func:`unavailable` says why it cannot run here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["SlurmCluster", "unavailable"]

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")


def unavailable() -> str | None:
    """Why a SLURM cluster cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (slurmctld/slurmd run as SlurmUser=root)"
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return (
            f"{', '.join(missing)} not installed "
            "(apt-get install slurmctld slurmd slurm-client munge; .ci/run does it when it can)"
        )
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlurmCluster:
    """munged + slurmctld + slurmd on this machine, stopped by PID.

    One node (this host) of ``cpus`` CPUs, or ``nodes`` > 1 emulated nodes ``node1``... (one
    slurmd each, ``slurmd -N``, all on this host) of ``cpus`` CPUs each.
    """

    def __init__(self, cpus: int = 2, root: str | Path | None = None, nodes: int = 1) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="nrslurm", dir="/tmp"))
        self.root.chmod(0o711)  # munged checks the socket's directory
        host = socket.gethostname()
        self.nodes = [host] if nodes == 1 else [f"node{i + 1}" for i in range(nodes)]
        self.host = host
        self.cpus = cpus
        self.processes: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}
        for name in ("state", "spool", "log"):
            (self.root / name).mkdir(exist_ok=True)

    def _conf(self) -> str:
        r = self.root
        return (
            f"""ClusterName=natsraytest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={r}/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd-%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
KillWait=10
MinJobAge=3600
"""
            + "".join(
                f"NodeName={node} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={_free_port()} "
                f"CPUs={self.cpus} State=UNKNOWN\n"
                for node in self.nodes
            )
            + "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        )

    def _daemon(self, name: str, *command: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")  # noqa: SIM115 - the daemon's stdout
        self.processes.append(
            subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        log.close()

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Start the daemons and wait (at most ``timeout`` s) until the node is idle."""
        r = self.root
        key = r / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        (r / "slurm.conf").write_text(self._conf())
        self._daemon(
            "munged", "munged", "--foreground", "--force", f"--key-file={key}", f"--socket={r}/munge.sock",
            f"--pid-file={r}/munged.pid", f"--log-file={r}/log/munged.log", f"--seed-file={r}/munged.seed",
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not (r / "munge.sock").exists():
            self._check_alive(deadline, "munged")
        self._daemon("slurmctld", "slurmctld", "-D", "-i", "-f", str(r / "slurm.conf"))
        for node in self.nodes:
            self._daemon(f"slurmd-{node}", "slurmd", "-D", "-N", node, "-f", str(r / "slurm.conf"))
        while self.run("sinfo", "--noheader", "--format=%D %t", check=False).stdout.split() != [
            str(len(self.nodes)),
            "idle",
        ]:
            self._check_alive(deadline, "slurmctld/slurmd")
        return self

    def _check_alive(self, deadline: float, what: str) -> None:
        dead = [p.args[0] for p in self.processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(
                f"SLURM test cluster: {what} did not start ({dead or 'timeout'}); see {self.root}/log"
            )
        time.sleep(0.5)

    def run(self, *command: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=60, check=check, cwd=cwd
        )

    def sbatch(self, *args: str, cwd: Path) -> int:
        """Submit; returns the job id."""
        done = self.run("sbatch", "--parsable", *args, cwd=cwd)
        return int(done.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job`` as a mapping (``JobState``, ``ExitCode``, ``StdOut``, ...)."""
        text = self.run("scontrol", "show", "job", "--oneliner", str(job_id)).stdout
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait(self, job_id: int, states: tuple[str, ...], timeout: float) -> dict[str, str]:
        """Wait (at most ``timeout`` s) until the job is in one of ``states``."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["JobState"] not in states:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['JobState']} after {timeout} s (want {states})")
            time.sleep(1.0)
        return job

    def stop(self) -> None:
        """Stop exactly the daemons started here (SIGTERM, then SIGKILL after 20 s)."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
