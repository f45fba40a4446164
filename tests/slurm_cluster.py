"""A real single-node Slurm cluster for the tests, started and stopped by a fixture.

:class:`SlurmCluster` writes a ``slurm.conf`` for this machine (one node with the CPUs and
memory that ``slurmd -C`` reports, one partition), generates a MUNGE key, and starts
``munged``, ``slurmctld`` and ``slurmd`` in the foreground as child processes, with every
file (config, key, sockets, state, spool, logs, PID files) in one temporary folder and the
ports chosen free at start. Nothing in ``/etc`` or ``/run`` is used or changed, so it runs
beside a system Slurm. Client commands (``sbatch``, ``squeue``, ``scancel``, ``srun`` inside
a job) find the cluster through ``SLURM_CONF``, which :meth:`SlurmCluster.env` sets.

It needs Debian's ``slurm-wlm`` and ``munge`` and root (``SlurmUser=root``: the daemons
start jobs as the submitting user). :func:`missing` says why a machine cannot run it.

Plugins are the ones that work in an unprivileged container: processes tracked by their
parent PID (``proctrack/linuxproc``), no task binding (``task/none``), no cgroups, and no
accounting database (``sacct`` then answers nothing; ``squeue`` shows what still runs).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "srun")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def missing() -> str | None:
    """Why this machine cannot start the test cluster, or ``None`` if it can."""
    absent = [name for name in DAEMONS + CLIENTS if _which(name) is None]
    if absent:
        return (
            f"Slurm is not installed ({', '.join(absent)} not found); on Debian or Ubuntu: "
            "apt-get install slurm-wlm munge"
        )
    if os.geteuid() != 0:
        return "the single-node Slurm test cluster runs its daemons as root (SlurmUser=root)"
    return None


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class SlurmCluster:
    """A single-node Slurm cluster living in ``folder`` (see the module docstring)."""

    partition = "debug"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.processes: dict[str, subprocess.Popen] = {}

    # ----------------------------------------------------------------------- the files
    def node_line(self) -> tuple[str, str]:
        """This machine as a Slurm node: ``(node name, "CPUs=... RealMemory=...")``."""
        out = subprocess.run(
            [_which("slurmd"), "-C"], capture_output=True, text=True, check=True
        ).stdout
        words = dict(w.split("=", 1) for w in out.split() if "=" in w)
        keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        spec = " ".join(f"{k}={words[k]}" for k in keep if k in words)
        # leave the OS some memory, or slurmd refuses to register a node that "shrank"
        memory = max(1, int(words.get("RealMemory", "1024")) * 9 // 10)
        return words["NodeName"], f"{spec} RealMemory={memory}"

    def write_config(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(f / "munge", 0o700)
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.node, spec = self.node_line()
        ctld_port, slurmd_port = _free_ports(2)
        lines = {
            "ClusterName": "scalinglab-test",
            "SlurmctldHost": f"{self.node}(127.0.0.1)",
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "SlurmctldPort": ctld_port,
            "SlurmdPort": slurmd_port,
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={f / 'munge' / 'munge.socket'}",
            "StateSaveLocation": f / "state",
            "SlurmdSpoolDir": f / "spool",
            "SlurmctldPidFile": f / "slurmctld.pid",
            "SlurmdPidFile": f / "slurmd.pid",
            "SlurmctldLogFile": f / "slurmctld.log",
            "SlurmdLogFile": f / "slurmd.log",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU",
            "SchedulerType": "sched/backfill",
            "MpiDefault": "none",
            "SwitchType": "switch/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobCompType": "jobcomp/none",
            "ReturnToService": 2,
            "SchedulerParameters": "sched_interval=1",
            "SlurmctldTimeout": 30,
            "SlurmdTimeout": 30,
            "InactiveLimit": 0,
            "KillWait": 2,
            "MinJobAge": 300,
        }
        text = "".join(f"{k}={v}\n" for k, v in lines.items())
        text += f"NodeName={self.node} NodeAddr=127.0.0.1 {spec} State=UNKNOWN\n"
        text += f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        self.conf.write_text(text)

    # ----------------------------------------------------------------------- the daemons
    def env(self) -> dict[str, str]:
        """The environment for client commands (and jobs) of this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.folder / f"{name}.out", "wb")  # noqa: SIM115 -- closed in stop()
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
        )
        self.processes[name].log = log

    def start(self, timeout: float = 60) -> None:
        """Write the files, start the three daemons and wait until the node is idle."""
        self.write_config()
        m = self.folder / "munge"
        self._start(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={m / 'munge.socket'}",
                f"--key-file={m / 'munge.key'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--log-file={m / 'munged.log'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
        )
        self._wait(lambda: (m / "munge.socket").exists(), timeout, "munged's socket")
        self._start("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._start("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(self.node_idle, timeout, f"node {self.node} idle in sinfo")

    def node_idle(self) -> bool:
        run = subprocess.run(
            [_which("sinfo"), "--noheader", "--format=%T", "--nodes", self.node],
            capture_output=True,
            text=True,
            env=self.env(),
        )
        return run.returncode == 0 and run.stdout.strip() == "idle"

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"no {what} after {timeout:.0f} s"
                raise RuntimeError(f"the test Slurm cluster did not start: {why}\n{self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        """The tail of every daemon's log, for a failure message."""
        parts = []
        for path in sorted(self.folder.glob("*.log")) + sorted(self.folder.glob("*.out")):
            tail = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop every daemon this cluster started, by its PID (slurmd and slurmctld first)."""
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            proc.log.close()
        self.processes.clear()
