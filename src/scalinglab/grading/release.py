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


def generate(course: Course, assignment: str, release_dir: Path, db: Path | str) -> None:
    """Run ``nbgrader generate_assignment`` for ``assignment`` of ``course``, writing the
    student notebooks to ``release_dir/assignment`` and the assignment's cells (with
    hidden tests) to the gradebook ``db``: a SQLite file or an SQLAlchemy URL (both may
    lie outside the course)."""
    url = str(db) if "://" in str(db) else f"sqlite:///{Path(db).resolve()}"
    api = nbgrader_api(course, release_directory=str(Path(release_dir).resolve()), db_url=url)
    target = Path(release_dir) / assignment
    if target.exists():  # start clean: a stale file must never survive a release
        shutil.rmtree(target)
    result = api.generate_assignment(assignment, force=True, create=True)
    if not result["success"]:
        raise RuntimeError(
            f"nbgrader generate_assignment failed for {assignment}:\n"
            f"{result.get('error') or ''}\n{result.get('log') or ''}"
        )


class WouldDiscardWork(RuntimeError):
    """Releasing would overwrite notebooks that hold someone's work."""


def signs_of_work(notebook: Path) -> list[str]:
    """Why ``notebook`` looks like someone's work rather than a fresh release: outputs or
    execution counts (a release has none), or a solution cell whose stub is gone."""
    import nbformat

    from scalinglab.grading.notebooks import nbgrader_meta

    try:
        nb = nbformat.read(notebook, 4)
    except Exception:  # noqa: BLE001 -- an unreadable file is not a release either
        return ["it is not a readable notebook"]
    signs = []
    if any(c.get("outputs") or c.get("execution_count") for c in nb.cells if c.cell_type == "code"):
        signs.append("it has been run (cells have outputs)")
    edited = [
        nbgrader_meta(c).get("grade_id", "?")
        for c in nb.cells
        if nbgrader_meta(c).get("solution")
        and c.cell_type == "code"
        and "NotImplementedError" not in c.source
    ]
    if edited:
        signs.append(f"solution cells {', '.join(edited)} have been filled in")
    return signs


def release(
    assignment: str,
    course: Course | None = None,
    release_dir: str | Path | None = None,
    force: bool = False,
) -> list[Path]:
    """Regenerate the release of ``assignment`` (default: into the course's ``exercises/``)
    and return the released notebooks. The gradebook written on the way is thrown away:
    releasing never touches the instructor's gradebook.

    A released notebook that looks like someone's work (:func:`signs_of_work`: a student
    who worked in ``exercises/``) is not overwritten unless ``force``:
    :class:`WouldDiscardWork` says which file and why."""
    course = course or Course.locate()
    course.check_assignment(assignment)
    release_dir = Path(release_dir) if release_dir else course.release_dir
    if not force:
        for existing in sorted((release_dir / assignment).glob("*.ipynb")):
            signs = signs_of_work(existing)
            if signs:
                raise WouldDiscardWork(
                    f"{existing} holds work that a release would discard ({'; '.join(signs)}); "
                    "copy it elsewhere (scalinglab start makes a work copy), or pass --force"
                )
    with tempfile.TemporaryDirectory(prefix="scalinglab-release-") as tmp:
        generate(course, assignment, release_dir, Path(tmp) / "gradebook.db")
    return sorted((release_dir / assignment).glob("*.ipynb"))
