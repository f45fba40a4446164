"""What a graded student gets back, and what the instructor keeps.

For each graded submission :func:`write_feedback` writes, in nbgrader's layout under the
course (or another root):

- ``autograded/<student>/<assignment>/<notebook>.ipynb``: the submission with the source's
  test cells (hidden tests included) and each part's verdict as the cell's output -- for
  the instructor and formgrader;
- ``feedback/<student>/<assignment>/<notebook>.html``: the submission with the *release's*
  test cells (visible tests only), each followed by its score and, for a failed part, the
  reason (the failing visible assert, or "a hidden test failed"). The hidden tests' source
  never appears in it: their lines are not in the release, and their messages and printed
  output never reach the report (:mod:`scalinglab.grading.checker`).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

from scalinglab.grading.autograde import GradeReport
from scalinglab.grading.course import Course, release_notebook_path, source_notebook_path
from scalinglab.grading.notebooks import graded_parts, nbgrader_meta


def _verdict_output(report: GradeReport, grade_id: str, for_student: bool):
    score, points = report.parts.get(grade_id, (0.0, 0.0))
    mark = "passed" if score >= points else "failed"
    lines = [f"{grade_id}: {mark}, {score:g} / {points:g} points"]
    reasons = report.public if for_student else report.messages
    if score < points and reasons.get(grade_id):
        lines.append(reasons[grade_id])
        if for_student:
            lines.append("(run the visible tests in your notebook for the full message)")
    text = "\n".join(lines) + "\n"
    outputs = []
    if report.outputs.get(grade_id):
        outputs.append(
            nbformat.v4.new_output("stream", name="stdout", text=report.outputs[grade_id])
        )
    outputs.append(
        nbformat.v4.new_output("stream", name="stdout" if mark == "passed" else "stderr", text=text)
    )
    return outputs


def _graded_copy(submission, tests_by_id: dict, report: GradeReport, for_student: bool):
    """The submission with each graded test cell replaced by ``tests_by_id``'s version
    (and missing ones appended) and the verdicts as outputs."""
    nb = nbformat.from_dict(submission)
    seen = set()
    cells = []
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in tests_by_id:
            if gid in seen:
                continue  # a duplicated test cell is graded once
            seen.add(gid)
            cell = nbformat.from_dict(tests_by_id[gid])
            cell.outputs = _verdict_output(report, gid, for_student)
            cell.execution_count = None
        cells.append(cell)
    for gid, test in tests_by_id.items():
        if gid not in seen:
            cell = nbformat.from_dict(test)
            cell.outputs = _verdict_output(report, gid, for_student)
            cells.append(cell)
    summary = [
        f"**{report.student} / {report.assignment}: {report.score:g} / {report.max_score:g} points**"
    ]
    if report.error:
        summary.append(f"Grading stopped early: {report.error}")
    summary += [f"Note: {note}" for note in report.notes]
    nb.cells = [nbformat.v4.new_markdown_cell("\n\n".join(summary)), *cells]
    return nb


def _tests_by_id(notebook) -> dict:
    return {part.grade_id: notebook.cells[part.index] for part in graded_parts(notebook)}


def write_feedback(
    report: GradeReport,
    submission: str | os.PathLike,
    course: Course,
    root: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write the autograded notebook and the student's HTML feedback; return their paths."""
    from nbconvert import HTMLExporter

    root = Path(root) if root else course.root
    source = source_notebook_path(report.assignment, course)
    release = release_notebook_path(report.assignment, course)
    nb = nbformat.read(submission, 4)
    name = source.name
    autograded = root / "autograded" / report.student / report.assignment / name
    autograded.parent.mkdir(parents=True, exist_ok=True)
    full = _graded_copy(nb, _tests_by_id(nbformat.read(source, 4)), report, for_student=False)
    nbformat.write(full, autograded)
    feedback_nb = _graded_copy(nb, _tests_by_id(nbformat.read(release, 4)), report, True)
    # the submission's own markdown and HTML outputs are untrusted: sanitise what a browser runs
    html, _ = HTMLExporter(sanitize_html=True).from_notebook_node(feedback_nb)
    feedback = root / "feedback" / report.student / report.assignment / f"{source.stem}.html"
    feedback.parent.mkdir(parents=True, exist_ok=True)
    feedback.write_text(html, encoding="utf-8")
    return autograded, feedback
