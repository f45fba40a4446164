"""Grade many submissions and record the scores in the instructor's nbgrader gradebook.

Each submission is autograded in isolation (:func:`scalinglab.grading.autograde`); only
this process writes the gradebook, one SQLite transaction per submission, so a crash or a
hostile notebook can never leave it half-written. The result is an ordinary nbgrader
gradebook: ``nbgrader export`` and formgrader read it as usual.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from scalinglab.grading.autograde import DEFAULT_TIMEOUT, UNGRADABLE, GradeReport, autograde
from scalinglab.grading.course import Course
from scalinglab.grading.release import generate


def _check_integrity(db_path: Path) -> None:
    if not db_path.exists():
        return
    with sqlite3.connect(db_path) as conn:
        (status,) = conn.execute("PRAGMA integrity_check").fetchone()
    if status != "ok":
        raise RuntimeError(f"gradebook {db_path} is corrupted: {status}")


def register_assignment(course: Course, assignment: str, db_path: Path) -> None:
    """Make sure the gradebook knows the assignment's notebooks and graded cells."""
    with tempfile.TemporaryDirectory(prefix="scalinglab-register-") as tmp:
        generate(course, assignment, Path(tmp) / "release", db_path)


def record(report: GradeReport, db_path: Path) -> None:
    """Write one report's auto-scores into the gradebook in a single transaction, each
    clamped to its part's points (which the gradebook holds from the source notebook)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db_path}") as gb:
        try:
            gb.update_or_create_student(report.student)
            submission = gb.update_or_create_submission(report.assignment, report.student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.name in report.parts:
                        score, points = report.parts[grade.name]
                        ceiling = min(points, float(grade.max_score or 0.0))
                        grade.auto_score = min(max(float(score), 0.0), ceiling)
            gb.db.commit()
        except Exception:
            gb.db.rollback()
            raise


def grade_submissions(
    assignment: str,
    submissions: Iterable[tuple[str, str | os.PathLike]],
    gradebook: str | os.PathLike = "gradebook.db",
    course: Course | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    cell_timeout: float | None = None,
    on_report: Callable[[GradeReport], None] | None = None,
    sandbox: bool = True,
    limits: dict | None = None,
) -> list[GradeReport]:
    """Autograde ``(student_id, notebook_path)`` pairs and record them in ``gradebook``.

    ``timeout`` bounds each submission's wall-clock time, ``cell_timeout`` each cell's (a
    cell past it is interrupted and the notebook goes on; default: nbgrader_config.py).
    Every submission gets a report (score 0 and an ``error`` if it could not be graded);
    ``on_report`` is called after each one is safely recorded. A file that is missing or is
    not a notebook gets a report with its error and is *not* recorded: nothing was
    submitted that could be graded. ``sandbox`` and ``limits`` are passed to
    :func:`autograde`.
    """
    course = course or Course.locate()
    course.check_assignment(assignment)
    db_path = Path(gradebook).resolve()
    _check_integrity(db_path)
    register_assignment(course, assignment, db_path)
    reports = []
    for student, notebook in submissions:
        report = autograde(
            notebook,
            assignment,
            course=course,
            student=student,
            timeout=timeout,
            cell_timeout=cell_timeout,
            sandbox=sandbox,
            limits=limits,
        )
        if not report.error or not report.error.startswith(UNGRADABLE):
            record(report, db_path)
            _check_integrity(db_path)
        reports.append(report)
        if on_report:
            on_report(report)
    return reports


def collect_submissions(course: Course, assignment: str) -> list[tuple[str, Path]]:
    """nbgrader's layout: ``submitted/<student>/<assignment>/*.ipynb``."""
    pairs = []
    for folder in sorted((course.root / "submitted").glob(f"*/{assignment}")):
        for nb in sorted(folder.glob("*.ipynb")):
            pairs.append((folder.parent.name, nb))
    return pairs
