"""Grade one submission: sandboxed student code, verdicts decided by the grader.

:func:`autograde` starts a trusted worker process (:mod:`scalinglab.grading._worker`)
that holds the assignment's tests, hidden ones included, and runs the submission's cells
in a student interpreter inside the OS sandbox (:mod:`scalinglab.grading.sandbox`). The
worker decides each part's verdict in its own namespace (:mod:`scalinglab.grading.checker`)
and streams it to this process as soon as it is known, so a submission that crashes or
stalls in part 4 keeps the points it earned in parts 1-3. This process enforces the
wall-clock limit: past it the worker and everything below it are killed, whatever the
submission does, and the parts not reached score 0.

Points come from the source notebook's metadata, never from anything the submission
could write: a part that passes gets its points, one that fails gets 0.
"""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from scalinglab.grading.course import Course, source_notebook_path
from scalinglab.grading.hidden import secret_paths
from scalinglab.grading.notebooks import clean_submission, graded_parts

DEFAULT_TIMEOUT = 900  # seconds for a whole submission; the contract asks for <= 120 s
DEFAULT_CELL_TIMEOUT = 300  # seconds for one cell or one call of a student function
KILL_GRACE = 5.0  # seconds between the limit and the worker's forced end
UNGRADABLE = "not a notebook"  # how the error of a missing or unreadable file begins
GRADER_ERROR = "not graded (the grader failed, not the submission)"  # never recorded
MAX_SUBMISSION_BYTES = 16 * 2**20  # a notebook file larger than this is not graded
# The worker (trusted checks, references, the replies it parses) runs in a memory cgroup of
# its own where one can be made, so that --jobs N workers cannot take the machine: its
# replies are bounded (wire.MAX_REPLY_BYTES), the rest is the course's own code.
WORKER_MEMORY_BYTES = 6 * 2**30


class Ungradable(ValueError):
    """The file is not a notebook this grader reads: missing, a link, not a regular file,
    too large, not JSON or not valid nbformat. The message is one line."""


def read_submission(path: str | os.PathLike):
    """The submission at ``path`` as a clean notebook (:func:`notebooks.clean_submission`).

    The file is opened without following a symbolic link (a link to ``solutions/`` would
    be read with the instructor's rights) and must be a regular file of at most
    :data:`MAX_SUBMISSION_BYTES`; otherwise :class:`Ungradable`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Ungradable(f"{UNGRADABLE}: {path} does not exist") from None
    except OSError as exc:  # ELOOP: the file is a symbolic link
        what = "a symbolic link (refused)" if Path(path).is_symlink() else exc.strerror
        raise Ungradable(f"{UNGRADABLE}: {path} is {what}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Ungradable(f"{UNGRADABLE}: {path} is not a regular file (refused)")
        if info.st_size > MAX_SUBMISSION_BYTES:
            raise Ungradable(
                f"{UNGRADABLE}: {path} has {info.st_size / 2**20:.0f} MiB, over the "
                f"{MAX_SUBMISSION_BYTES // 2**20} MiB limit (clear the outputs and save again)"
            )
        data = fh.read(MAX_SUBMISSION_BYTES + 1)
    try:
        nb = nbformat.reads(data.decode("utf-8"), 4)
        nbformat.validate(nb)
        return clean_submission(nb)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the submission's fault
        raise Ungradable(f"{UNGRADABLE}: {type(exc).__name__}: {str(exc)[:200]}") from None


class SandboxUnavailable(RuntimeError):
    """Grading was asked to sandbox the student's code and cannot here."""


@dataclass
class GradeReport:
    """Points per graded part (``grade_id -> (score, max_points)``) of one submission,
    what went wrong in the parts that failed, and at most one error line for the whole."""

    assignment: str
    student: str
    parts: dict[str, tuple[float, float]] = field(default_factory=dict)
    error: str | None = None
    # the error line in the student's fixed vocabulary (no exit status, cell name or
    # exception type, which the student's code could choose after seeing hidden inputs)
    public_error: str | None = None
    messages: dict[str, str] = field(default_factory=dict)  # grade_id -> why it failed
    # grade_id -> why it failed, without text from the student's code (for feedback)
    public: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # grade_id -> visible output
    notes: list[str] = field(default_factory=list)  # repaired cells and the like
    details: list[str] = field(default_factory=list)  # notes for the instructor only
    elapsed: float = 0.0

    @property
    def score(self) -> float:
        return float(sum(s for s, _ in self.parts.values()))

    @property
    def max_score(self) -> float:
        return float(sum(m for _, m in self.parts.values()))

    def lost(self) -> list[str]:
        """``grade_id``s of the parts that did not get full points."""
        return sorted(k for k, (s, m) in self.parts.items() if s < m)

    def summary(self, width: int = 150) -> str:
        """Lines for the instructor's terminal. Every text that may come from the
        submission is escaped onto one line (:func:`terminal_text`), so no escape sequence
        or forged line reaches the terminal; long messages are cut at a word."""
        lines = [
            f"{terminal_text(self.student)} / {self.assignment}: "
            f"{self.score:g} / {self.max_score:g}"
        ]
        for k, (s, m) in self.parts.items():
            why = self.messages.get(k) if s < m else ""
            why = f"  ({terminal_text(why, width)})" if why else ""
            lines.append(f"  {terminal_text(k):<28} {s:g} / {m:g}{why}")
        lines += [f"  note: {terminal_text(n, 300)}" for n in self.notes + self.details]
        if self.error:
            lines.append(f"  error: {terminal_text(self.error, 300)}")
        return "\n".join(lines)


def terminal_text(text: str, width: int | None = None) -> str:
    """``text`` safe to print on one terminal line: control characters (ANSI and OSC
    escapes, carriage returns, newlines), and Unicode line separators and bidirectional
    overrides, are shown as escapes (``\\x1b``, ``\\n``); cut after ``width`` characters
    at a word boundary, with an ellipsis."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0 or ch in _UNSAFE_CHARS:
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    line = "".join(out)
    if width is not None and len(line) > width:
        cut = line.rfind(" ", 0, width)
        line = line[: cut if cut > width // 2 else width].rstrip() + " ..."
    return line


# line and paragraph separators, bidirectional embeddings, overrides and isolates
_UNSAFE_CHARS = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def autograde(
    notebook: str | os.PathLike,
    assignment: str,
    course: Course | None = None,
    student: str = "student",
    timeout: float = DEFAULT_TIMEOUT,
    cell_timeout: float | None = None,
    sandbox: bool = True,
    limits: dict | None = None,
    threads: int | None = None,
) -> GradeReport:
    """Autograde ``notebook`` as ``student``'s submission of ``assignment``.

    ``sandbox=True`` (the default) runs the student's code in the OS sandbox and raises
    :class:`SandboxUnavailable` where there is none; ``sandbox=False`` runs it as an
    ordinary process (for trusted notebooks, or a machine without bubblewrap). Never raises
    because of the submission: an unreadable file, a crash or a timeout gives a report
    with 0 on the parts not passed and an ``error`` line. ``threads`` caps the BLAS/OpenMP
    threads of the grader and the student (when several submissions are graded at once).
    """
    from scalinglab.grading import sandbox as os_sandbox

    if sandbox:
        ok, why = os_sandbox.available()
        if not ok:
            raise SandboxUnavailable(why)
    course = course or Course.locate()
    source = source_notebook_path(assignment, course)
    parts = graded_parts(nbformat.read(source, 4))
    report = GradeReport(assignment, student, {p.grade_id: (0.0, p.points) for p in parts})
    started = time.monotonic()
    try:
        clean = read_submission(notebook)
    except Ungradable as exc:
        report.error = str(exc)
        return report

    with tempfile.TemporaryDirectory(prefix="scalinglab-grade-", ignore_cleanup_errors=True) as tmp:
        os.chmod(tmp, 0o700)
        private_copy = Path(tmp) / "submission.ipynb"
        nbformat.write(clean, private_copy)  # what the worker grades: no link, no outputs
        job = {
            "source": str(source),
            "submission": str(private_copy),
            "sandbox": bool(sandbox),
            "cell_timeout": float(cell_timeout or _configured_cell_timeout(course)),
            "timeout": float(timeout),
            "secret": [str(course.root), str(Path(notebook).resolve()), str(Path.cwd())]
            + [str(path) for path in secret_paths()],  # the instructor's hidden-test secret
            "limits": limits or {},
            "threads": threads,
            "student": student,  # per-student variants: the id the tests check against
        }
        _run_worker(job, report, Path(tmp))
    report.elapsed = time.monotonic() - started
    return report


def _configured_cell_timeout(course: Course) -> float:
    try:
        value = course.config().Execute.timeout
        return float(value) if isinstance(value, (int, float)) else DEFAULT_CELL_TIMEOUT
    except Exception:  # noqa: BLE001
        return DEFAULT_CELL_TIMEOUT


def _run_worker(job: dict, report: GradeReport, tmp: Path) -> None:
    """Run the worker; fold its event stream into ``report``; enforce the wall clock."""
    from scalinglab.grading.sandbox import SandboxCgroups

    cgroups = SandboxCgroups(4096, WORKER_MEMORY_BYTES) if job["sandbox"] else None
    try:
        _run_worker_in(job, report, tmp, cgroups)
    finally:
        if cgroups is not None:
            cgroups.remove()


def _run_worker_in(job: dict, report: GradeReport, tmp: Path, cgroups) -> None:
    with open(tmp / "worker.log", "wb") as log:  # the child keeps its own copy of the fd
        proc = subprocess.Popen(
            [sys.executable, "-m", "scalinglab.grading._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            cwd=tmp,
            # TMPDIR: whatever the worker's libraries leave in a temporary folder (torch's
            # caches, say) goes in the private folder that is removed after each submission
            env={
                **os.environ,
                **thread_env(job.get("threads")),
                "MPLBACKEND": "Agg",
                "TMPDIR": str(tmp),
                # for the tests' side only: the student's process gets its own environment
                "SCALINGLAB_GRADED_STUDENT": str(job.get("student", "")),
            },
        )
    if cgroups is not None:  # (from here: preexec_fn is unsafe with --jobs threads; the
        cgroups.add(proc.pid)  # worker starts the student's sandbox only after its job)
    proc.stdin.write(json.dumps(job).encode())
    proc.stdin.close()
    deadline = time.monotonic() + job["timeout"] + KILL_GRACE
    state = {"current": None, "done": False, "failure": None, "public": None, "cgroups": []}
    buffer = b""
    fd = proc.stdout.fileno()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            _apply_event(line, report, state)
    timed_out = not state["done"] and time.monotonic() >= deadline
    _kill_group(proc)
    if state["cgroups"]:  # the sandbox's, which a killed worker could not remove
        from scalinglab.grading.sandbox import remove_cgroups

        remove_cgroups(state["cgroups"])
    if state["failure"]:
        report.error = state["failure"]
        report.public_error = state["public"] or "grading stopped early"
    elif timed_out:
        where = f" in part {state['current']}" if state["current"] else ""
        report.error = f"timed out after {job['timeout']:g} s{where}; parts not reached score 0"
        report.public_error = report.error
    elif not state["done"] and cgroups is not None and cgroups.out_of_memory():
        limit = f"{WORKER_MEMORY_BYTES / 2**30:.3g} GiB"
        report.error = f"{GRADER_ERROR}: its worker ran out of memory (limit {limit})"
    elif not state["done"]:
        log = (tmp / "worker.log").read_text(errors="replace").strip().splitlines()
        report.error = f"{GRADER_ERROR}: its worker stopped: " + (log[-1] if log else "no output")


def thread_env(threads: int | None) -> dict[str, str]:
    """Grading runs on the CPU; with ``threads``, BLAS and OpenMP use no more than that."""
    env = {"SCALINGLAB_DEVICE": "cpu"}
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def _apply_event(line: bytes, report: GradeReport, state: dict) -> None:
    try:
        event = json.loads(line)
    except ValueError:
        return
    kind = event.get("event")
    if kind == "start":
        state["current"] = event.get("part")
    elif kind == "verdict":
        part = event.get("part")
        if part in report.parts:  # points from the source, clamped: all or nothing
            points = report.parts[part][1]
            report.parts[part] = (points if event.get("passed") else 0.0, points)
            if not event.get("passed"):
                report.messages[part] = str(event.get("message", ""))
                report.public[part] = str(event.get("public", ""))
            report.outputs[part] = str(event.get("output", ""))
        state["current"] = None
    elif kind == "grader_error":
        state["failure"] = f"{GRADER_ERROR}: {event.get('message', '')}"[:400]
    elif kind == "failure" and not state["failure"]:
        state["failure"] = str(event.get("message", ""))[:300]
        state["public"] = str(event.get("public", ""))[:300]
    elif kind == "note":
        notes = report.details if event.get("private") else report.notes
        notes.append(str(event.get("message", ""))[:300])
    elif kind == "cgroups" and isinstance(event.get("paths"), list):
        state["cgroups"] = [str(p) for p in event["paths"]]
    elif kind == "done":
        state["done"] = True


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the worker and its process group (the sandbox dies with its parent)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    if proc.stdout:
        proc.stdout.close()
