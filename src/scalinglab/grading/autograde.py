"""Grade one submission with the real ``nbgrader autograde``, isolated and time-limited.

Each submission is graded in its own throw-away course folder: the assignment is
generated there from the sources (so the gradebook holds the hidden tests), the source
notebooks are then removed, and ``nbgrader autograde`` runs in a separate process group
with a wall-clock limit. Whatever the submission does -- loop forever, crash the kernel,
delete files next to it -- the caller gets a :class:`GradeReport`, never an exception,
and the instructor's gradebook is not within its reach.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from scalinglab.grading.course import Course, source_notebook_path
from scalinglab.grading.notebooks import graded_parts

DEFAULT_TIMEOUT = 900  # seconds for a whole submission; the contract asks for <= 120 s


@dataclass
class GradeReport:
    """Points per graded part (``grade_id -> (score, max_points)``) of one submission."""

    assignment: str
    student: str
    parts: dict[str, tuple[float, float]] = field(default_factory=dict)
    error: str | None = None

    @property
    def score(self) -> float:
        return float(sum(s for s, _ in self.parts.values()))

    @property
    def max_score(self) -> float:
        return float(sum(m for _, m in self.parts.values()))

    def lost(self) -> list[str]:
        """``grade_id``s of the parts that did not get full points."""
        return sorted(k for k, (s, m) in self.parts.items() if s < m)

    def summary(self) -> str:
        lines = [f"{self.student} / {self.assignment}: {self.score:g} / {self.max_score:g}"]
        lines += [f"  {k:<28} {s:g} / {m:g}" for k, (s, m) in sorted(self.parts.items())]
        if self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)


def autograde(
    notebook: str | os.PathLike,
    assignment: str,
    course: Course | None = None,
    student: str = "student",
    timeout: float = DEFAULT_TIMEOUT,
    cell_timeout: float | None = None,
) -> GradeReport:
    """Autograde ``notebook`` as ``student``'s submission of ``assignment``.

    Returns a report with one entry per graded part. A submission that cannot be read,
    runs past ``timeout`` seconds or breaks nbgrader scores 0 on every part and the
    report's ``error`` says why.
    """
    course = course or Course.locate()
    source = source_notebook_path(assignment, course)
    zero = {part.grade_id: (0.0, part.points) for part in graded_parts(nbformat.read(source, 4))}
    report = GradeReport(assignment, student, dict(zero))
    try:
        nbformat.validate(nbformat.read(notebook, 4))
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the submission's fault
        report.error = f"not a valid notebook: {type(exc).__name__}: {exc}"
        return report

    with tempfile.TemporaryDirectory(prefix="scalinglab-grade-") as tmp:
        tmp = Path(tmp)
        submitted = tmp / "submitted" / student / assignment
        submitted.mkdir(parents=True)
        # nbgrader matches submissions to the assignment by notebook name.
        shutil.copy(notebook, submitted / source.name)
        job = {
            "course_root": str(course.root),
            "tmp": str(tmp),
            "assignment": assignment,
            "student": student,
            "cell_timeout": cell_timeout,
        }
        error = _run_worker(job, timeout)
        scores = _read_scores(tmp / "gradebook.db", assignment, student)
    for grade_id, (score, max_points) in scores.items():
        if grade_id in report.parts:
            report.parts[grade_id] = (score, max_points)
    report.error = error
    return report


def _run_worker(job: dict, timeout: float) -> str | None:
    """Run :mod:`scalinglab.grading._worker` on ``job``; return an error message or None."""
    cmd = [sys.executable, "-m", "scalinglab.grading._worker", json.dumps(job)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=job["tmp"],
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        proc.communicate()
        return f"timed out after {timeout:g} s; parts not reached score 0"
    if proc.returncode != 0:
        return f"nbgrader autograde failed (exit {proc.returncode}):\n{out[-4000:]}"
    return None


def _kill_tree(pid: int) -> None:
    """Kill a process and all its descendants (the kernel runs in a session of its own)."""
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = parent.children(recursive=True) + [parent]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def _read_scores(db_path: Path, assignment: str, student: str) -> dict[str, tuple[float, float]]:
    """Auto-scores of every autograder test cell in the temporary gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    if not db_path.exists():
        return {}
    scores: dict[str, tuple[float, float]] = {}
    try:
        with Gradebook(f"sqlite:///{db_path}") as gb:
            submission = gb.find_submission(assignment, student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.cell.cell_type == "code":
                        scores[grade.name] = (
                            float(grade.auto_score or 0.0),
                            float(grade.max_score),
                        )
    except (MissingEntry, Exception):  # noqa: BLE001 -- a broken temp gradebook means no scores
        return scores
    return scores
