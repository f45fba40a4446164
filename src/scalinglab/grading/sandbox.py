"""The operating-system sandbox around a student's code (bubblewrap on Linux).

What the sandboxed process sees and may do:

- a read-only view of the system (``/usr`` and friends, a few files of ``/etc``), of the
  Python installation and of the environment the grader runs in (its ``sys.prefix``, the
  folder the ``scalinglab`` package is imported from) -- and nothing else of the machine:
  not the course folder, not ``solutions/``, no gradebook, no other submission, no home
  folder;
- a private home (its working directory) and ``/tmp``, in-memory file systems of limited
  size that vanish with it -- nothing it writes reaches the machine's disk;
- no network (a new, empty network namespace), its own PID namespace (it cannot see or
  signal the grader; every process it starts dies with it), its own IPC and UTS
  namespaces, no capabilities, no new user namespaces;
- limits on address space, file size, open files and CPU time (``setrlimit``), and on the
  number of processes (``RLIMIT_NPROC``, plus a ``pids`` cgroup where one can be created:
  the kernel does not apply RLIMIT_NPROC to root).

What it does not protect against: timing and other side channels, a kernel exploit, a
student who hands in a classmate's work. Where bubblewrap is missing (macOS, Windows, a
Linux without unprivileged user namespaces) :func:`available` says why, and grading
refuses to run unless the instructor explicitly asks for unsandboxed grading.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
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

    memory_bytes: int = 4 * 2**30  # address space of each process
    file_bytes: int = 256 * 2**20  # largest file it may write
    open_files: int = 1024
    processes: int = 256  # threads count as processes for the kernel
    cpu_seconds: int = 3600  # CPU time of each process (the wall clock is enforced apart)
    disk_bytes: int = 512 * 2**20  # size of each of the private /tmp and home (in memory)

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


def command(argv: list[str], secret: list[Path], disk_bytes: int = Limits.disk_bytes) -> list[str]:
    """The bubblewrap command line that runs ``argv`` in a sandbox whose only writable
    folders are a private ``/tmp`` and home (``/home/student``): in-memory file systems of
    ``disk_bytes`` each, gone with the sandbox."""
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
        "--chdir", SANDBOX_HOME,
        "--setenv", "HOME", SANDBOX_HOME,
        "--",
        *argv,
    ]  # fmt: skip
    return cmd


class PidsCgroup:
    """A ``pids`` cgroup capping the number of processes of one sandbox, where this
    process may create one (root, or a delegated cgroup v2 subtree); otherwise inert. The
    sandbox's first process joins it itself, before exec (:mod:`scalinglab.grading.student`),
    so no child escapes it."""

    def __init__(self, max_processes: int):
        self.path: Path | None = None
        name = f"scalinglab-{uuid.uuid4().hex[:12]}"
        for parent, limit_file in (
            (Path("/sys/fs/cgroup/pids"), "pids.max"),  # cgroup v1
            (Path("/sys/fs/cgroup"), "pids.max"),  # cgroup v2 (root of the hierarchy)
        ):
            try:
                path = parent / name
                path.mkdir()
            except OSError:
                continue
            try:
                (path / limit_file).write_text(str(max_processes))
            except OSError:
                path.rmdir()
                continue
            self.path = path
            return

    def remove(self) -> None:
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass
