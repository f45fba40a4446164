"""Canvas export: ``nbgrader export --exporter=scalinglab.grading.canvas.CanvasExportPlugin``
fills in a gradebook file exported from Canvas (``tests/data/canvas_gradebook_export.csv``,
in the format Canvas documents: Student, ID, SIS User ID, SIS Login ID, Section, one column
per assignment, a ``Points Possible`` row) with nbgrader's final scores, late penalty
included, and keeps everything else of it."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from traitlets.config import Config

from conftest import course_copy
from scalinglab.grading import GradeReport, graded_parts, source_notebook_path
from scalinglab.grading.canvas import IDENTITY
from scalinglab.grading.gradebook import record, register_assignment
from scalinglab.grading.late import assign_late_penalties
from scalinglab.grading.notebooks import nbgrader_meta

A = "01-softmax-cross-entropy"
SAMPLE = Path(__file__).parent / "data" / "canvas_gradebook_export.csv"
EXPORTER = "--exporter=scalinglab.grading.canvas.CanvasExportPlugin"


def read(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


@pytest.fixture
def graded_course(course, tmp_path):
    """A gradebook with alice (full marks, on time), bob (full marks, late: penalty
    'zero') and carol (half of the parts, not on Canvas's roster)."""
    mine = course_copy(tmp_path, course)
    url = f"sqlite:///{mine.root / 'gradebook.db'}"
    register_assignment(mine, A, url)
    with Gradebook(url) as gb:
        gb.update_or_create_assignment(A, duedate=datetime(2026, 11, 20, 18, 0))
    notebook = nbformat.read(source_notebook_path(A, course), 4)
    parts = graded_parts(notebook)
    full = {p.grade_id: (p.points, p.points) for p in parts}
    half = {p.grade_id: (p.points * (i % 2), p.points) for i, p in enumerate(parts)}
    record(GradeReport(A, "alice", full), url, datetime(2026, 11, 20, 17, 0))
    record(GradeReport(A, "bob", full), url, datetime(2026, 11, 21, 9, 0))
    record(GradeReport(A, "carol", half), url, datetime(2026, 11, 20, 17, 0))
    zero = Config()
    zero.LateSubmissionPlugin.penalty_method = "zero"
    for student in ("alice", "bob", "carol"):
        assign_late_penalties(zero, url, A, student, [source_notebook_path(A, course).stem])
    # points possible: the autograded parts and the written answer a person grades
    manual = [nbgrader_meta(c) for c in notebook.cells if nbgrader_meta(c).get("solution")]
    auto = sum(p.points for p in parts)
    total = auto + sum(m["points"] for m in manual if m.get("grade"))
    # alice's score: every autograded point; the written answer waits for a person
    return mine.root, total, auto, sum(s for s, _ in half.values())


def export(root, *args):
    done = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "export", EXPORTER, *args],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_canvas_export_fills_in_canvas_own_file(graded_course):
    root, total, auto, carol = graded_course
    export(root, f"--CanvasExportPlugin.roster={SAMPLE}", "--to=canvas.csv")
    sample, out = read(SAMPLE), read(root / "canvas.csv")
    assert out[0] == sample[0]  # Canvas's header, its assignment ids and read-only columns
    column = sample[0].index(f"{A} (40711)")
    assert out[1][0].strip() == "Points Possible" and out[1][column] == f"{total:g}"
    assert out[1][column + 1] == "5.00"  # the quiz keeps its points
    rows = {row[3]: row for row in out[2:]}
    for original in sample[2:]:  # names, Canvas ids, sections and other scores untouched
        mine = rows[original[3]]
        assert mine[:5] == original[:5]
        assert mine[column + 1 :] == original[column + 1 :]
    assert rows["alice"][column] == f"{auto:g}"
    assert rows["bob"][column] == "0"  # late, penalty_method = 'zero'
    assert rows["grace"][column] == ""  # on Canvas but not in nbgrader: left blank
    assert rows["carol"][column] == f"{carol:g}"  # in nbgrader only: added by login
    assert 0 < carol < auto < total


def test_canvas_export_without_a_roster(graded_course):
    root, total, auto, carol = graded_course
    export(root, "--to=canvas.csv")
    out = read(root / "canvas.csv")
    assert out[0] == [*IDENTITY, A]
    assert out[1] == ["Points Possible", "", "", "", "", f"{total:g}"]
    scores = {row[3]: row[5] for row in out[2:]}
    assert scores == {"alice": f"{auto:g}", "bob": "0", "carol": f"{carol:g}"}
