"""Run a notebook and report which graded parts pass: the students' self-check.

This is what ``scalinglab validate`` prints. Unlike ``nbgrader validate`` (which exits 0
even when tests fail), the result is per part and the command's exit status says whether
everything passed. Only the tests inside the notebook run -- for a student that is the
visible tests of the release; the hidden ones run at grading time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat

from scalinglab.grading.notebooks import graded_parts


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
        return "not attempted" if "NotImplementedError" in self.message else "failed"


def check_notebook(
    notebook: str | os.PathLike, cell_timeout: float = 300, kernel_name: str = "python3"
) -> list[PartResult]:
    """Execute ``notebook`` top to bottom (errors do not stop it) in its own folder and
    return one :class:`PartResult` per graded test cell."""
    from nbclient import NotebookClient

    path = Path(notebook)
    nb = nbformat.read(path, 4)
    previous = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "validate"  # same switch as nbgrader validate
    try:
        NotebookClient(
            nb,
            timeout=cell_timeout,
            kernel_name=kernel_name,
            allow_errors=True,
            interrupt_on_timeout=True,
            resources={"metadata": {"path": str(path.parent.resolve())}},
        ).execute()
    finally:
        if previous is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = previous
    results = []
    for part in graded_parts(nb):
        errors = [o for o in nb.cells[part.index].get("outputs", []) if o.output_type == "error"]
        if errors:
            err = errors[0]
            results.append(
                PartResult(part.grade_id, part.points, False, f"{err.ename}: {err.evalue}")
            )
        else:
            results.append(PartResult(part.grade_id, part.points, True))
    return results


def format_results(results: list[PartResult]) -> str:
    """A table a student can read: each part, its points and what went wrong."""
    lines = []
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        detail = "" if r.passed else f"  ({r.status}: {r.message[:160]})"
        lines.append(f"[{mark}] {r.grade_id:<28} {r.points:g} pt{detail}")
    earned = sum(r.points for r in results if r.passed)
    total = sum(r.points for r in results)
    lines.append(f"visible tests: {earned:g} / {total:g} points pass")
    lines.append("(hidden tests run at grading time and may check more cases)")
    return "\n".join(lines)
