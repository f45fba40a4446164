"""Run a notebook and report which graded parts pass: the students' self-check.

This is what ``scalinglab validate`` prints. It uses the same engine as grading
(:mod:`scalinglab.grading.checker`: the student's cells in one interpreter, the test cells
judged by the grader), so a notebook that passes here passes the same visible tests when
graded; grading adds the hidden tests and the OS sandbox. Only the tests inside the
notebook run -- for a student, the visible tests of the release.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat

from scalinglab.grading.autograde import DEFAULT_CELL_TIMEOUT


class NotebookError(ValueError):
    """The file is missing or is not a readable notebook."""


@dataclass(frozen=True)
class PartResult:
    grade_id: str
    points: float
    passed: bool
    message: str = ""

    @property
    def status(self) -> str:
        if self.passed:
            return "passed"
        return "not attempted" if "not attempted" in self.message else "failed"


def read_notebook(path: str | os.PathLike):
    """The notebook at ``path``, or :class:`NotebookError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise NotebookError(f"{path}: no such file")
    try:
        nb = nbformat.read(path, 4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file gets the same answer
        raise NotebookError(f"{path}: not a valid notebook ({type(exc).__name__})") from exc
    return nb


def check_notebook(
    notebook: str | os.PathLike,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT,
    timeout: float = 3600,
) -> list[PartResult]:
    """Run ``notebook`` top to bottom with its own folder as the working directory, as
    Jupyter's "Run all" does: the first error in one of the student's cells stops it, and
    the parts after it fail naming that cell and error. Returns one :class:`PartResult`
    per graded test cell."""
    from scalinglab.grading.checker import check_notebook_against
    from scalinglab.grading.notebooks import clean_submission

    path = Path(notebook)
    nb = clean_submission(read_notebook(path))
    verdicts = check_notebook_against(
        nb,
        nb,
        sandboxed=False,
        cell_timeout=cell_timeout,
        timeout=timeout,
        env={"NBGRADER_EXECUTION": "validate"},
        workdir=path.parent.resolve(),
        stop_on_error=True,
    )
    return [PartResult(v.grade_id, v.points, v.passed, v.message) for v in verdicts]


def format_results(results: list[PartResult]) -> str:
    """A table a student can read: each part, its points and what went wrong."""
    lines = []
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        lines.append(f"[{mark}] {r.grade_id:<28} {r.points:g} pt")
        if not r.passed:
            lines.append(f"       {r.status}: {r.message}")
    earned = sum(r.points for r in results if r.passed)
    total = sum(r.points for r in results)
    lines.append(f"visible tests: {earned:g} / {total:g} points pass")
    lines.append("(hidden tests run at grading time and may check more cases)")
    return "\n".join(lines)
