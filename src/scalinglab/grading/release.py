"""Generate the student release (``exercises/``) from the nbgrader sources (``solutions/``)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from scalinglab.grading.course import Course


def nbgrader_api(course: Course, cell_timeout: float | None = None, **course_directory):
    """An :class:`nbgrader.apps.NbGraderAPI` for ``course`` with ``CourseDirectory`` traits
    overridden by keyword (``root``, ``db_url``, ``source_directory``, ...) and, if given,
    the per-cell execution timeout."""
    from nbgrader.apps import NbGraderAPI

    _put_interpreter_scripts_on_path()
    config = course.config()
    config.CourseDirectory.root = str(course.root)
    if cell_timeout:
        config.Execute.timeout = cell_timeout
    for key, value in course_directory.items():
        setattr(config.CourseDirectory, key, value)
    return NbGraderAPI(config=config)


def _put_interpreter_scripts_on_path() -> None:
    """nbgrader's gradebook runs the ``alembic`` script by name, so the scripts folder of
    this interpreter (a virtual environment's ``bin/``) must be on ``PATH`` even when the
    environment was not activated (``.venv/bin/scalinglab grade ...``)."""
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def generate(course: Course, assignment: str, release_dir: Path, db_path: Path) -> None:
    """Run ``nbgrader generate_assignment`` for ``assignment`` of ``course``, writing the
    student notebooks to ``release_dir/assignment`` and the assignment's cells (with
    hidden tests) to the gradebook at ``db_path`` (both may lie outside the course)."""
    api = nbgrader_api(
        course,
        release_directory=str(Path(release_dir).resolve()),
        db_url=f"sqlite:///{Path(db_path).resolve()}",
    )
    target = Path(release_dir) / assignment
    if target.exists():  # start clean: a stale file must never survive a release
        shutil.rmtree(target)
    result = api.generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        raise RuntimeError(
            f"nbgrader generate_assignment failed for {assignment}:\n"
            f"{result.get('error') or ''}\n{result.get('log') or ''}"
        )


def release(
    assignment: str, course: Course | None = None, release_dir: str | Path | None = None
) -> list[Path]:
    """Regenerate the release of ``assignment`` (default: into the course's ``exercises/``)
    and return the released notebooks. The gradebook written on the way is thrown away:
    releasing never touches the instructor's gradebook."""
    course = course or Course.locate()
    course.check_assignment(assignment)
    release_dir = Path(release_dir) if release_dir else course.release_dir
    with tempfile.TemporaryDirectory(prefix="scalinglab-release-") as tmp:
        generate(course, assignment, release_dir, Path(tmp) / "gradebook.db")
    return sorted((release_dir / assignment).glob("*.ipynb"))
