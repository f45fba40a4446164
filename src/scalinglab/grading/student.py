"""The grader's handle on a student's interpreter: start it (sandboxed or not), send it
requests with deadlines, interrupt it, kill it and everything it started.

The grader never blocks on the student: every read and write waits with ``select`` up to a
deadline. A cell that runs past its time gets an interrupt (KeyboardInterrupt, as in a
notebook); if no reply comes within a grace period the whole process tree is killed and
the grader says so (:class:`StudentTimeout`). A process that dies or talks nonsense
raises :class:`StudentDied`.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scalinglab.grading import sandbox, wire

INTERRUPT_GRACE = 3.0  # seconds a cell gets to stop after an interrupt before it is killed


class StudentTimeout(Exception):
    """The student's code ran past its time and was stopped."""


class StudentDied(Exception):
    """The student's process ended or broke the protocol. ``public`` says so in the
    student's fixed vocabulary (no exit status or signal, which the student's code picks)."""

    def __init__(self, message: str, public: str = "your code stopped the grader's kernel"):
        super().__init__(message)
        self.public = public


class StartError(RuntimeError):
    """The student's interpreter could not start: the grader's environment is at fault (a
    missing package, a sandbox that cannot see the Python installation), not the student."""


class StudentProcess:
    """A running :mod:`scalinglab.grading.runner` with its private folder."""

    def __init__(
        self,
        sandboxed: bool,
        secret_paths: list[Path] = (),
        limits: sandbox.Limits | None = None,
        env: dict[str, str] | None = None,
        workdir: Path | None = None,
        scratch: Path | None = None,
    ):
        self.sandboxed = sandboxed
        # The output log lives in ``scratch`` (grading: the private folder its parent
        # removes, even after killing this process); cleanup errors never stop a batch.
        self._tmp = tempfile.TemporaryDirectory(
            prefix="scalinglab-student-", dir=scratch, ignore_cleanup_errors=True
        )
        root = Path(self._tmp.name)
        os.chmod(root, 0o700)
        self.home = root / "home"
        self.home.mkdir()
        self.log_path = root / "output.log"
        self._next_id = 0

        req_r, self._req_w = os.pipe()
        self._rep_r, rep_w = os.pipe()
        int_r, self._int_w = os.pipe()
        argv = [
            sys.executable,
            "-s",  # no user site-packages: the same packages as the grader
            "-m",
            "scalinglab.grading.runner",
            str(req_r),
            str(rep_w),
            str(int_r),
        ]
        run_env = _student_env(env, sandboxed)
        limits = limits or sandbox.Limits()
        if sandboxed:
            argv = sandbox.command(argv, list(secret_paths), limits.disk_bytes, limits.shm_bytes)
            cwd = None
        else:
            cwd = str(workdir or self.home)
        self._cgroup = (
            sandbox.SandboxCgroups(limits.processes, limits.memory_bytes) if sandboxed else None
        )
        self._memory_limit = limits.memory_bytes
        self.cgroup_paths = [str(p) for p in self._cgroup.paths] if self._cgroup else []
        cgroup = self._cgroup

        prctl = _prctl()

        def preexec():  # runs in the child between fork and exec
            if prctl is not None:  # SIGKILL when the grader's worker dies: never outlive it
                prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if cgroup is not None:
                cgroup.join()
            if sandboxed:
                limits.apply()

        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(req_r, rep_w, int_r),
                start_new_session=True,
                env=run_env,
                cwd=cwd,
                preexec_fn=preexec,
            )
        for fd in (req_r, rep_w, int_r):
            os.close(fd)
        os.set_blocking(self._req_w, False)
        self._buffer = bytearray()
        self._skip = 0  # bytes of an unwanted frame still to be discarded

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait for the runner's first message, sent before any student code runs; raise
        :class:`StartError` (with the end of its output) if it never comes."""
        try:
            ready = self._read_reply(0, time.monotonic() + timeout)
        except StudentDied:
            ready = None
        if ready is None or not ready.get("ready"):
            self.kill()
            tail = self.output_tail(600).strip().splitlines()
            raise StartError(
                "the student's interpreter did not start"
                + (
                    f" (exit status {self.proc.returncode})"
                    if self.proc.returncode is not None
                    else ""
                )
                + (f": {tail[-1]}" if tail else "")
            )

    # -- requests -----------------------------------------------------------------------
    def request(self, message: dict, timeout: float) -> dict:
        """Send ``message`` and wait up to ``timeout`` s for its reply; on timeout interrupt,
        then kill. Raises :class:`StudentTimeout` or :class:`StudentDied`."""
        self._next_id += 1
        message = {**message, "id": self._next_id}
        deadline = time.monotonic() + max(timeout, 0.0)
        self._write(wire.dump_message(message), deadline)
        reply = self._read_reply(self._next_id, deadline)
        if reply is not None:
            return reply
        self.interrupt()
        reply = self._read_reply(self._next_id, time.monotonic() + INTERRUPT_GRACE)
        if reply is not None:
            raise StudentTimeout(f"interrupted after {timeout:.0f} s")
        self.kill()
        raise StudentTimeout(f"stopped after {timeout:.0f} s (it ignored the interrupt)")

    def interrupt(self) -> None:
        try:
            os.write(self._int_w, b"i")
        except OSError:
            pass

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise StudentTimeout("did not read its input in time")
            _, writable, _ = select.select([], [self._req_w], [], remaining)
            if not writable:
                continue
            try:
                view = view[os.write(self._req_w, view) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError) as exc:
                raise StudentDied(*self._death()) from exc

    def _read_reply(self, wanted_id: int, deadline: float) -> dict | None:
        """The reply with id ``wanted_id``; ``None`` if the deadline passes first.

        A frame's header carries its id: a frame with another id (stale, or forged by the
        student's code) is discarded as it streams in, unparsed and never held whole, so
        the grader's memory stays bounded by one reply of at most
        :data:`wire.MAX_REPLY_BYTES`, parsed only if it has few enough nested values."""
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                del self._buffer[:dropped]
                self._skip -= dropped
                if not self._skip:
                    continue
            elif len(self._buffer) >= wire.HEADER_BYTES:
                size, frame_id = wire.parse_header(bytes(self._buffer[: wire.HEADER_BYTES]))
                if frame_id != wanted_id:
                    del self._buffer[: wire.HEADER_BYTES]
                    self._skip = size
                    continue
                if size > wire.MAX_REPLY_BYTES:
                    self.kill()
                    raise StudentDied(
                        f"sent a reply of {size} bytes, over the grader's "
                        f"{wire.MAX_REPLY_BYTES // 2**20} MiB",
                        "your code returned a value larger than the grader accepts",
                    )
                end = wire.HEADER_BYTES + size
                if len(self._buffer) >= end:
                    body = bytes(self._buffer[wire.HEADER_BYTES : end])
                    del self._buffer[:end]
                    try:
                        message = wire.parse_body(body)
                    except wire.WireError as exc:
                        self.kill()
                        raise StudentDied(
                            f"sent a malformed reply ({exc})",
                            "your code sent a reply the grader cannot read",
                        ) from exc
                    if message.get("id") == wanted_id:
                        return message
                    continue
            remaining = deadline - time.monotonic()  # more bytes are needed
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self._rep_r], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(self._rep_r, 1 << 20)
            if not chunk:
                raise StudentDied(*self._death())
            self._buffer += chunk

    def _death(self) -> tuple[str, str]:
        """Why the student's process ended: for the instructor, and in the student's fixed
        vocabulary."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if self._cgroup is not None and self._cgroup.out_of_memory():
            limit = f"limit {self._memory_limit / 2**30:.3g} GiB"
            return (
                f"the student's kernel ran out of memory ({limit})",
                f"your code ran out of memory ({limit})",
            )
        public = "your code stopped the grader's kernel"
        # Killed by a signal: -N from the process itself, 128 + N from bubblewrap, which
        # reports its child's death the way a shell does.
        number = -code if code is not None and code < 0 else None
        if self.sandboxed and code is not None and code > 128:
            number = code - 128
        if number is not None:
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            return f"the student's kernel died ({name})", public
        return f"the student's kernel died (exit status {code})", public

    # -- ending ---------------------------------------------------------------------------
    def kill(self) -> None:
        """Kill the process tree: its session, and with the sandbox its PID namespace."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        """Stop the student's process tree and delete its private folder."""
        try:
            os.write(self._req_w, wire.dump_message({"op": "exit"}))
        except OSError:
            pass
        self.kill()
        for fd in (self._req_w, self._rep_r, self._int_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._cgroup is not None:
            self._cgroup.remove()
        self._tmp.cleanup()

    def output_tail(self, limit: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _prctl():
    """libc's prctl on Linux (loaded before fork: nothing is imported in the child)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _student_env(extra: dict[str, str] | None, sandboxed: bool) -> dict[str, str]:
    """A small, explicit environment: nothing of the grader's (no course path, no tokens)."""
    import scalinglab

    package_parent = str(Path(scalinglab.__file__).resolve().parent.parent)
    env = {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": package_parent,  # the very package the grader uses
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "SCALINGLAB_DEVICE": "cpu",
    }
    if sandboxed:
        env["HOME"] = sandbox.SANDBOX_HOME
    else:
        for key in ("HOME", "TMPDIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            if key in os.environ:
                env[key] = os.environ[key]
    env.update(extra or {})
    return env
