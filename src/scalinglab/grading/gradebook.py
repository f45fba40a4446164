"""Grade many submissions and record the scores in the instructor's nbgrader gradebook.

Each submission is autograded in isolation (:func:`scalinglab.grading.autograde`); only
this process writes the gradebook, one transaction per submission, so a crash or a
hostile notebook can never leave it half-written. The result is an ordinary nbgrader
gradebook: ``nbgrader export`` and formgrader read it as usual.

The gradebook is a SQLite file by default, or any SQLAlchemy URL nbgrader supports
(``postgresql://user@host/db``: nbgrader's FAQ advises a server database when several
people grade with formgrader at once). After each submission is recorded, nbgrader's own
late-penalty preprocessor runs on it (:mod:`scalinglab.grading.late`). Manually graded
cells are left alone: their scores stay empty until a person grades them in formgrader,
and grading again never touches a manual score.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

from scalinglab.grading.autograde import (
    DEFAULT_TIMEOUT,
    GRADER_ERROR,
    UNGRADABLE,
    GradeReport,
    SandboxUnavailable,
    autograde,
)
from scalinglab.grading.course import Course, source_notebook_path
from scalinglab.grading.late import assign_late_penalties
from scalinglab.grading.release import generate


def db_url(gradebook: str | os.PathLike) -> str:
    """An SQLAlchemy URL for ``gradebook``: a URL (``postgresql://...``) as it is, a path as
    the SQLite file there (absolute)."""
    text = str(gradebook)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or None for a server database."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _check_integrity(gradebook: str | os.PathLike) -> None:
    db_path = sqlite_path(db_url(gradebook))
    if db_path is None or not db_path.exists():
        return
    with sqlite3.connect(db_path) as conn:
        (status,) = conn.execute("PRAGMA integrity_check").fetchone()
    if status != "ok":
        raise RuntimeError(f"gradebook {db_path} is corrupted: {status}")


def register_assignment(course: Course, assignment: str, gradebook: str | os.PathLike) -> None:
    """Make sure the gradebook (a path or a URL) knows the assignment's notebooks and graded
    cells; an assignment already there keeps its due date."""
    with tempfile.TemporaryDirectory(prefix="scalinglab-register-") as tmp:
        generate(course, assignment, Path(tmp) / "release", db_url(gradebook))


def submission_timestamp(notebook: Path) -> datetime:
    """When the work was handed in: nbgrader's ``timestamp.txt`` next to the notebook if
    there is one, else the notebook's modification time (UTC)."""
    stamp = Path(notebook).parent / "timestamp.txt"
    if stamp.is_file():
        try:
            from nbgrader.utils import parse_utc

            return parse_utc(stamp.read_text().strip()).replace(tzinfo=None)
        except Exception:  # noqa: BLE001 -- an unreadable stamp falls back to the mtime
            pass
    return datetime.fromtimestamp(Path(notebook).stat().st_mtime, tz=timezone.utc).replace(
        tzinfo=None
    )


def record(
    report: GradeReport, gradebook: str | os.PathLike, timestamp: datetime | None = None
) -> None:
    """Write one report's auto-scores into the gradebook (a path or a URL) in a single
    transaction, each clamped to its part's points (which the gradebook holds from the
    source notebook). Only the autograded parts are written: a manually graded cell keeps
    its scores (empty until a person grades it) however often the submission is graded."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():
        # nbgrader's update_or_create_submission adds rows through relationships before the
        # session knows them; SQLAlchemy warns, then inserts them on commit all the same
        # (the tests read every row back), so the warning says nothing to an instructor.
        warnings.filterwarnings("ignore", message=".*not in session.*")
        with Gradebook(db_url(gradebook)) as gb:
            try:
                gb.update_or_create_student(report.student)
                extra = {"timestamp": timestamp} if timestamp else {}
                submission = gb.update_or_create_submission(
                    report.assignment, report.student, **extra
                )
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
    gradebook: str | os.PathLike = "gradebook.db",  # a SQLite file or an SQLAlchemy URL
    course: Course | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    cell_timeout: float | None = None,
    on_report: Callable[[GradeReport], None] | None = None,
    sandbox: bool = True,
    limits: dict | None = None,
    jobs: int = 1,
    feedback_root: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[GradeReport]:
    """Autograde ``(student_id, notebook_path)`` pairs and record them in ``gradebook``.

    ``timeout`` bounds each submission's wall-clock time, ``cell_timeout`` each cell's (a
    cell past it is interrupted and the notebook goes on; default: nbgrader_config.py).
    Every submission gets a report (score 0 and an ``error`` if it could not be graded);
    ``on_report`` is called after each one is safely recorded. A file that is missing or is
    not a notebook gets a report with its error and is *not* recorded: nothing was
    submitted that could be graded. ``sandbox`` and ``limits`` are passed to
    :func:`autograde`.

    ``jobs`` submissions are graded at once, each in its own worker and sandbox; only this
    process writes the gradebook, in the order the grades arrive, one transaction each; the
    reports come back in the order of ``submissions`` and do not depend on ``jobs``. With
    ``feedback_root`` (usually the course folder), each recorded submission also gets its
    autograded notebook and HTML feedback there (:mod:`scalinglab.grading.feedback`).
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    course = course or Course.locate()
    course.check_assignment(assignment)
    url = db_url(gradebook)
    if sqlite_path(url) is not None:
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    _check_integrity(url)
    register_assignment(course, assignment, url)
    config = course.config()
    pairs = [(student, Path(notebook)) for student, notebook in submissions]
    jobs = max(1, min(int(jobs), len(pairs) or 1))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    limits = dict(limits or {})
    reports: dict[int, GradeReport] = {}

    def grade(pair):
        student, notebook = pair
        return autograde(
            notebook,
            assignment,
            course=course,
            student=student,
            timeout=timeout,
            cell_timeout=cell_timeout,
            sandbox=sandbox,
            limits=limits,
            threads=threads,
        )

    bar = _progress_bar(len(pairs), progress)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade, pair): i for i, pair in enumerate(pairs)}
        for future in as_completed(futures):
            i = futures[future]
            student, notebook = pairs[i]
            try:
                report = future.result()
            except SandboxUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 -- a grader bug must not stop the batch
                report = GradeReport(assignment, student, error=f"{GRADER_ERROR}: {exc!r}")
            if not report.error or not report.error.startswith((UNGRADABLE, GRADER_ERROR)):
                timestamp = submission_timestamp(notebook)
                record(report, url, timestamp)
                if notebook.parent == course.root / "submitted" / student / assignment:
                    ensure_submission_timestamp(notebook, timestamp)
                _check_integrity(url)
                assign_late_penalties(
                    config,
                    url,
                    assignment,
                    student,
                    [source_notebook_path(assignment, course).stem],
                )
                if feedback_root is not None:
                    _write_feedback(report, notebook, course, feedback_root, timestamp)
            reports[i] = report
            bar.update(1)
            if on_report:
                on_report(report)
    bar.close()
    return [reports[i] for i in range(len(pairs))]


def _write_feedback(report, notebook, course, root, timestamp) -> None:
    """The feedback files of a recorded submission and nbgrader's ``timestamp.txt`` next to
    them. Never raises: whatever the submission holds, the batch goes on (a failure is
    the report's note, and the gradebook keeps the score)."""
    from scalinglab.grading.feedback import write_feedback

    try:
        autograded, feedback = write_feedback(report, notebook, course, root)
        for folder in (autograded.parent, feedback.parent):  # as nbgrader's autograde does
            (folder / "timestamp.txt").write_text(_format_timestamp(timestamp))
    except Exception as exc:  # noqa: BLE001 -- feedback is a courtesy, the grade is recorded
        report.details.append(f"no feedback written: {type(exc).__name__}: {str(exc)[:200]}")


def _format_timestamp(timestamp: datetime) -> str:
    """nbgrader's ``timestamp.txt`` format (UTC), read back by ``nbgrader.utils.parse_utc``
    as the very value the gradebook holds."""
    return timestamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def ensure_submission_timestamp(notebook: Path, timestamp: datetime) -> None:
    """Write ``timestamp.txt`` next to a submission that has none (nbgrader's collect
    writes one; a folder filled by hand has none), so that formgrader, which compares it
    with the gradebook, sees the submission as autograded rather than new."""
    stamp = Path(notebook).parent / "timestamp.txt"
    try:
        fd = os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError:  # there is one already (or the folder is not writable)
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(_format_timestamp(timestamp))


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="submission", disable=not enabled, file=sys.stderr)


def collect_submissions(
    course: Course, assignment: str, warn: Callable[[str], None] | None = None
) -> list[tuple[str, Path]]:
    """nbgrader's layout: ``submitted/<student>/<assignment>/<notebook>.ipynb``.

    A student's or assignment folder that is a symbolic link is refused with a warning; a
    notebook that is a link is returned, and :func:`autograde` refuses it with one line. A
    folder with several notebooks contributes the one named like the assignment's
    notebook; the others are reported through ``warn`` and skipped. A folder with none of
    that name contributes its only notebook, or nothing (with a warning) if there are
    several.
    """
    expected = source_notebook_path(assignment, course).name
    pairs = []
    for folder in sorted((course.root / "submitted").glob(f"*/{assignment}")):
        if folder.is_symlink() or folder.parent.is_symlink():
            if warn:  # its files would be read with the instructor's rights
                warn(f"{folder.parent.name}: {folder} is reached through a symbolic link: refused")
            continue
        notebooks = sorted(folder.glob("*.ipynb"))
        chosen = [nb for nb in notebooks if nb.name == expected] or (
            notebooks if len(notebooks) == 1 else []
        )
        ignored = [nb for nb in notebooks if nb not in chosen]
        if warn and ignored:
            what = "graded " + chosen[0].name if chosen else f"none is named {expected}"
            warn(
                f"{folder.parent.name}: {len(notebooks)} notebooks in {folder} ({what}; "
                f"ignored: {', '.join(nb.name for nb in ignored)})"
            )
        pairs += [(folder.parent.name, nb) for nb in chosen]
    return pairs
