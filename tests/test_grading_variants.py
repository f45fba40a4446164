"""Per-student variants and manually graded answers.

Variants: different ids get different numbers; a student who copies a classmate's answers
scores 0 on the variant part, whether they keep the classmate's id or put in their own.
Manual cells: ``scalinglab grade`` leaves them empty for formgrader, they are not part of
the autograded maximum, and grading again never overwrites a score a person gave.

The generic checks cover every exercise (``CONVERTED``: all of them follow the pattern in
CONTRIBUTING.md).
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import SANDBOX, assignments, course_copy
from scalinglab.grading import grade_submissions, graded_parts, source_notebook_path
from scalinglab.grading.notebooks import HIDDEN_BEGIN, nbgrader_meta
from scalinglab.grading.variants import SELF_STUDY, student_variant, variant_rng

# every exercise has a written answer graded by hand and hidden inputs from the instructor's
# secret; those with a numeric-answer part that can vary per student also have a variant
# (01: its numeric parts are derived from shared data; 03: no numeric answer; 04: its
# prediction is scored on one shipped held-out run, see CONTRIBUTING)
CONVERTED = assignments()
WITH_VARIANT = [
    "02-trainability",
    "05-resolution-limited-scaling",
    "06-double-descent",
    "07-emergence",
    "08-many-skills",
]
A = "06-double-descent"
K_CHOICES = (2, 3, 4, 5)  # the notebook's student_variant(..., k_out=K_CHOICES)


def _k(student: str) -> int:
    return student_variant(A, student, k_out=K_CHOICES)["k_out"]


def test_ids_get_their_own_reproducible_variants():
    ids = [f"student{i:03d}" for i in range(200)]
    ks = [_k(i) for i in ids]
    assert ks == [_k(i) for i in ids]  # the same id, the same numbers
    counts = [ks.count(k) for k in K_CHOICES]
    assert min(counts) > 200 / len(K_CHOICES) / 2  # every variant in use, none dominant
    # variants come from the public key, never from the instructor's hidden-test secret
    assert variant_rng(A, "x").integers(1 << 30) == variant_rng(A, "x").integers(1 << 30)
    with pytest.raises(ValueError):
        student_variant(A, "", k_out=K_CHOICES)


@pytest.mark.parametrize("assignment", CONVERTED)
def test_converted_exercises_have_hidden_inputs_and_a_manual_cell(assignment, course):
    nb = nbformat.read(source_notebook_path(assignment, course), 4)
    hidden = [c.source.split(HIDDEN_BEGIN)[1] for c in nb.cells if HIDDEN_BEGIN in c.source]
    assert hidden and any(f'hidden_rng("{assignment}", ' in block for block in hidden)
    # no generator seeded with a number a student can read in the public source
    assert not any(re.search(r"default_rng\(\d", block) for block in hidden)
    manual = [
        c for c in nb.cells if nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("solution")
    ]
    assert len(manual) == 1 and manual[0].cell_type == "markdown"
    assert nbgrader_meta(manual[0])["points"] > 0
    # manual points are not autograded: graded_parts leaves them out, as nbgrader does
    assert nbgrader_meta(manual[0])["grade_id"] not in {p.grade_id for p in graded_parts(nb)}


@pytest.mark.parametrize("assignment", WITH_VARIANT)
def test_variant_exercises_have_an_id_cell_a_variant_and_an_id_check(assignment, course):
    nb = nbformat.read(source_notebook_path(assignment, course), 4)
    cells = {nbgrader_meta(c).get("grade_id"): c for c in nb.cells}
    assert 'STUDENT_ID = "self-study"' in cells["student_id"].source
    assert not nbgrader_meta(cells["student_id"]).get("solution")  # shown as is in the release
    assert any("student_variant(" in c.source for c in nb.cells if c.cell_type == "code")
    assert any("check_student_id(STUDENT_ID)" in c.source for c in nb.cells)


def _with_id(notebook: Path, student_id: str, k: int, out: Path) -> Path:
    nb = nbformat.read(notebook, 4)
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid == "student_id":
            cell.source = f'STUDENT_ID = "{student_id}"'
        elif gid == "multi_prediction":
            cell.source = f"predicted_params_at_peak = {40 * k}"
    nbformat.write(nb, out)
    return out


def _export(root: Path) -> dict[str, float]:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "export", "--to=grades.csv"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with open(root / "grades.csv", newline="") as fh:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(fh)}


@pytest.mark.slow
def test_copying_a_classmates_variant_scores_zero_and_manual_grades_survive(
    course, tmp_path, monkeypatch
):
    mine = course_copy(tmp_path, course)
    monkeypatch.chdir(mine.root)
    alice = "alice"
    bob = next(s for s in ("bob", "bo", "bert", "ben", "bill") if _k(s) != _k(alice))
    source = source_notebook_path(A, course)
    own = _with_id(source, alice, _k(alice), tmp_path / "alice.ipynb")
    relabelled = _with_id(source, bob, _k(alice), tmp_path / "bob.ipynb")  # alice's number
    db = mine.root / "gradebook.db"
    reports = grade_submissions(
        A,
        [(alice, own), (bob, own), (bob + "2", relabelled)],
        gradebook=db,
        course=mine,
        sandbox=SANDBOX,
        jobs=3,
    )
    alice_r, copied_r, relabelled_r = reports
    assert not alice_r.lost(), alice_r.summary()
    assert copied_r.lost() == ["test_multi_prediction"], copied_r.summary()  # wrong id
    assert relabelled_r.lost() == ["test_multi_prediction"], relabelled_r.summary()
    assert alice_r.max_score == sum(p.points for p in graded_parts(nbformat.read(source, 4)))

    # the written answer waits for a person: no score, flagged for formgrader
    with Gradebook(f"sqlite:///{db}") as gb:
        grade = gb.find_grade("explain_multi", source.stem, A, alice)
        assert grade.auto_score is None and grade.manual_score is None
        assert grade.needs_manual_grade
        grade.manual_score = 1.5  # what formgrader's grade handler writes
        grade.needs_manual_grade = False
        gb.db.commit()
    assert _export(mine.root)[alice] == alice_r.score + 1.5
    # grading again (a re-run, a regrade) keeps the person's score
    (again,) = grade_submissions(A, [(alice, own)], gradebook=db, course=mine, sandbox=SANDBOX)
    assert not again.lost(), again.summary()
    with Gradebook(f"sqlite:///{db}") as gb:
        grade = gb.find_grade("explain_multi", source.stem, A, alice)
        assert grade.manual_score == 1.5 and not grade.needs_manual_grade
    assert _export(mine.root)[alice] == alice_r.score + 1.5
    assert SELF_STUDY not in _export(mine.root)
