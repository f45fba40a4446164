"""The operating-system sandbox around a student's code (bubblewrap on Linux).

What the sandboxed process sees and may do:

- a read-only view of the system (``/usr`` and friends, a few files of ``/etc``), of the
  Python installation and of the environment the grader runs in (its ``sys.prefix``, the
  folder the ``scalinglab`` package is imported from) -- and nothing else of the machine:
  not the course folder, not ``solutions/``, no gradebook, no other submission, no home
  folder;
- a private home (its working directory), ``/tmp`` and ``/dev/shm``, in-memory file
  systems of limited size that vanish with it -- nothing it writes reaches the machine's
  disk; everything else, bubblewrap's own root and ``/dev`` included, is read-only;
- no network (a new, empty network namespace), its own PID namespace (it cannot see or
  signal the grader; every process it starts dies with it), its own IPC and UTS
  namespaces, no capabilities, no new user namespaces;
- a bound on the memory of the whole sandbox -- its processes, its in-memory folders,
  memfds -- in a ``memory`` cgroup (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``, no
  swap) and on its number of processes in a ``pids`` cgroup, where this process may create
  them (as root; :class:`SandboxCgroups`). Past the memory bound the kernel kills a
  process of the sandbox, never one outside it, and the grader reports "ran out of
  memory". **Fallback** where no cgroup can be made (no root, no delegation): each process
  has its own address-space limit (``RLIMIT_AS``) and ``RLIMIT_NPROC`` caps processes
  (which the kernel does not apply to root), so the sandbox's total memory is bounded only
  by (processes x address space) plus the in-memory folders -- grade with ``--jobs`` and
  ``--memory-limit`` that the machine can afford in that case;
- limits on address space, file size, open files and CPU time of each process
  (``setrlimit``).

What it does not protect against: timing and other side channels, a kernel exploit, a
student who hands in a classmate's work. Where bubblewrap is missing (macOS, Windows, a
Linux without unprivileged user namespaces) :func:`available` says why, and grading
refuses to run unless the instructor explicitly asks for unsandboxed grading.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SANDBOX_HOME = "/home/student"
_ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "passwd",
    "group",
    "alternatives",
    "mime.types",
)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one student process tree."""

    # memory of the whole sandbox (memory cgroup), and the address space of each process
    memory_bytes: int = 4 * 2**30
    file_bytes: int = 256 * 2**20  # largest file it may write
    open_files: int = 1024
    processes: int = 256  # threads count as processes for the kernel
    cpu_seconds: int = 3600  # CPU time of each process (the wall clock is enforced apart)
    disk_bytes: int = 512 * 2**20  # size of each of the private /tmp and home (in memory)
    shm_bytes: int = 64 * 2**20  # size of /dev/shm (in memory)

    def apply(self) -> None:
        """setrlimit in the child before exec (``preexec_fn``); inherited by the sandbox."""
        for which, value in (
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_NPROC, self.processes),
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_CORE, 0),
        ):
            soft, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))


@lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """``(True, "")`` if bubblewrap can start a sandbox here, else ``(False, reason)``."""
    if not sys.platform.startswith("linux"):
        return False, f"no sandbox on {sys.platform}: bubblewrap needs Linux"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        probe = subprocess.run(
            [bwrap, *_namespace_args(), "--ro-bind", "/", "/", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap failed to start: {exc}"
    if probe.returncode != 0:
        return False, f"bubblewrap cannot create a sandbox here: {probe.stderr.strip()[:300]}"
    return True, ""


@lru_cache(maxsize=1)
def _bwrap_supports(flag: str) -> bool:
    try:
        text = subprocess.run(["bwrap", "--help"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return flag in text


def _namespace_args() -> list[str]:
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if _bwrap_supports("--disable-userns"):
        args += ["--unshare-user", "--disable-userns"]
    return args


def readable_paths(secret: list[Path]) -> list[Path]:
    """Folders of the Python environment the sandbox needs, read-only.

    The interpreter's prefixes (a virtual environment may live inside the course folder)
    and the folder ``scalinglab`` is imported from are always bound, unless one of them
    holds a ``secret`` path (the course, its solutions, the gradebook). Other ``sys.path``
    folders are bound only if they neither hold nor lie inside a secret path, so a test
    runner's ``tests/`` folder, say, stays out. The working directory always counts as
    secret.
    """
    import scalinglab

    # The grader's working directory is never bound either: it holds the grader's own files
    # (a worker started with ``python -m`` from its private folder also has it on sys.path).
    secret = [s.resolve() for s in [*secret, Path.cwd()]]

    def holds_secret(path: Path) -> bool:
        return any(s == path or path in s.parents for s in secret)

    def inside_secret(path: Path) -> bool:
        return any(s in path.parents for s in secret)

    needed = [
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(sys.executable).resolve().parent.parent,
        Path(scalinglab.__file__).resolve().parent.parent,
    ]
    extra = [Path(p) for p in sys.path if p]
    candidates = [(p.resolve(), True) for p in needed] + [(p.resolve(), False) for p in extra]
    chosen: list[Path] = []
    for path, is_needed in candidates:
        if not path.is_dir() or path == Path("/") or holds_secret(path):
            continue
        if not is_needed and inside_secret(path):
            continue
        if any(path == c or c in path.parents for c in chosen):
            continue  # already inside a bound folder
        chosen = [c for c in chosen if path not in c.parents]  # keep the outermost
        chosen.append(path)
    return sorted(chosen)


def command(
    argv: list[str],
    secret: list[Path],
    disk_bytes: int = Limits.disk_bytes,
    shm_bytes: int = Limits.shm_bytes,
) -> list[str]:
    """The bubblewrap command line that runs ``argv`` in a sandbox whose only writable
    folders are a private ``/tmp`` and home (``/home/student``), in-memory file systems of
    ``disk_bytes`` each, and ``/dev/shm`` (``shm_bytes``), all gone with the sandbox.
    bubblewrap's own root (which holds the mount points and ``/etc``) and ``/dev`` are
    in-memory file systems of the kernel's default size: both are remounted read-only."""
    # Fresh /proc, /dev and /tmp first: a bind below (the environment of a course that lives
    # under /tmp, say) must not be hidden by a mount made after it.
    size = ["--size", str(int(disk_bytes))]
    cmd = [
        "bwrap",
        *_namespace_args(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(int(shm_bytes)),
        "--tmpfs",
        "/dev/shm",
        "--remount-ro",
        "/dev",
        *size,
        "--tmpfs",
        "/tmp",
    ]
    for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            cmd += ["--ro-bind", str(path), str(path)]
    for name in _ETC_FILES:
        path = Path("/etc") / name
        if path.exists():
            cmd += ["--ro-bind", str(path), str(path)]
    for path in readable_paths(secret):
        if not str(path).startswith(("/usr/", "/bin/", "/lib")):
            cmd += ["--ro-bind", str(path), str(path)]
    cmd += [
        *size, "--tmpfs", SANDBOX_HOME,
        "--remount-ro", "/",
        "--chdir", SANDBOX_HOME,
        "--setenv", "HOME", SANDBOX_HOME,
        "--",
        *argv,
    ]  # fmt: skip
    return cmd


CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_WAIT = 10.0  # seconds to wait for a sandbox's processes to leave its cgroups


class SandboxCgroups:
    """The cgroups of one sandbox: ``pids`` (at most ``max_processes`` processes and
    threads) and ``memory`` (at most ``memory_bytes`` in all: every process, the in-memory
    ``/tmp`` and home, ``/dev/shm`` and memfds; no swap), in cgroup v2 or v1, wherever this
    process may create them (root, or a delegated v2 subtree). Where it cannot, the object
    is inert for that controller and the limits of :class:`Limits` (per process) remain.

    The sandbox's first process joins them itself, before exec (:meth:`join`, from
    :mod:`scalinglab.grading.student`), so no child escapes them. When the kernel kills a
    process for memory, :meth:`out_of_memory` says so. :meth:`remove` kills what is left in
    them, waits until they are empty and removes them."""

    def __init__(self, max_processes: int, memory_bytes: int):
        self.paths: list[Path] = []
        self.memory: Path | None = None  # the memory cgroup, if any
        self.memory_bytes = int(memory_bytes)
        # SCALINGLAB_CGROUP_TAG (inherited by the worker) names the cgroups of one batch
        tag = "".join(c for c in os.environ.get("SCALINGLAB_CGROUP_TAG", "") if c.isalnum())
        name = f"scalinglab-{tag + '-' if tag else ''}{uuid.uuid4().hex[:12]}"
        if (CGROUP_ROOT / "cgroup.controllers").is_file():  # cgroup v2, unified
            limits = {"pids.max": max_processes, "memory.max": memory_bytes}
            limits["memory.swap.max"] = 0
            path = self._make(CGROUP_ROOT / name, limits)
            if path is not None and (path / "memory.max").is_file():
                self.memory = path
            return
        self._make(CGROUP_ROOT / "pids" / name, {"pids.max": max_processes})  # cgroup v1
        path = self._make(
            CGROUP_ROOT / "memory" / name,
            {"memory.limit_in_bytes": memory_bytes, "memory.memsw.limit_in_bytes": memory_bytes},
        )
        if path is not None:
            self.memory = path

    def _make(self, path: Path, limits: dict[str, int]) -> Path | None:
        """Create ``path`` and write the first limit (required) and the others (where the
        kernel has them: no swap accounting, say)."""
        try:
            path.mkdir()
        except OSError:
            return None
        for i, (name, value) in enumerate(limits.items()):
            try:
                (path / name).write_text(str(int(value)))
            except OSError:
                if i == 0:
                    self._rmdir(path)
                    return None
        self.paths.append(path)
        return path

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid to, to join (computed before
        fork: the child only writes)."""
        return [str(p / "cgroup.procs") for p in self.paths]

    def join(self) -> None:
        """Move the calling process into every cgroup (in the child, before exec)."""
        self.add(os.getpid())

    def add(self, pid: int) -> None:
        """Move process ``pid`` into every cgroup."""
        for procs in self.procs_files:
            try:
                with open(procs, "w") as fh:
                    fh.write(str(pid))
            except OSError:
                pass

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the sandbox for lack of memory."""
        if self.memory is None:
            return False
        for events in ("memory.events", "memory.oom_control"):  # v2, v1
            try:
                text = (self.memory / events).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                    return True
        return False

    def remove(self) -> None:
        """Kill what is left in the cgroups, wait for them to empty, remove them. Never
        raises: a cgroup that cannot be removed is left (and reported by the tests)."""
        remove_cgroups(self.paths)

    @staticmethod
    def _rmdir(path: Path, deadline: float | None = None) -> None:
        # the kernel refuses (EBUSY) while the last process is still exiting
        deadline = deadline or time.monotonic() + CGROUP_WAIT
        while True:
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)


def remove_cgroups(paths) -> None:
    """Kill the processes left in each of the sandbox cgroups ``paths``, wait for it to
    empty and remove it (also from the grader, when it had to kill the worker that made
    them). Paths that are not a ``scalinglab-*`` cgroup are ignored."""
    for path in map(Path, paths):
        if not (path.name.startswith("scalinglab-") and CGROUP_ROOT in path.parents):
            continue
        deadline = time.monotonic() + CGROUP_WAIT
        while True:
            pids = _pids_in(path)
            if not pids:
                break
            try:
                (path / "cgroup.kill").write_text("1")  # v2: the whole cgroup at once
            except OSError:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        SandboxCgroups._rmdir(path, deadline)


def _pids_in(cgroup: Path) -> list[int]:
    try:
        return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []
