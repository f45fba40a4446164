"""Chapter 1's exercise: plausible wrong answers lose exactly their parts' points, and the
grader survives broken and hostile submissions."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import SANDBOX, assert_mistakes_cost
from scalinglab.grading import (
    autograde,
    check_notebook,
    grade_submissions,
    release_notebook_path,
    source_notebook_path,
    with_solution_replaced,
)

A = "01-softmax-cross-entropy"

NAIVE_SOFTMAX = """def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z)  # overflows for large logits
    return e / e.sum(axis=-1, keepdims=True)"""

CE_VIA_LOG_OF_SOFTMAX = """def cross_entropy(z, y):
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y)
    p = softmax(z)  # underflows to 0 for very wrong predictions: log(0) = -inf
    return float(np.mean(-np.log(p[np.arange(len(y)), y])))"""

UNWEIGHTED_RATE = """def stationary_distribution(P):
    P = np.asarray(P, dtype=np.float64)
    vals, vecs = np.linalg.eig(P.T)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    return pi / pi.sum()


def entropy_rate(P):
    return float(np.mean(entropy(P)))  # forgets to weight the rows by pi"""


# Part 6: the "intuitive" prediction -- L1 training settles near the floor.
L1_NEAR_FLOOR = 'l1_outcome = "near the floor"\nl1_vs_truth = "lower"'

# Part 7: gap = k / n instead of k / (2n) -- k_hat off by a factor 2.
GAP_WITHOUT_THE_HALF = """def fit_gap_law(ns, gaps):
    ns = np.asarray(ns, dtype=np.float64)
    gaps = np.asarray(gaps, dtype=np.float64)
    slope = np.polyfit(np.log(ns), np.log(gaps), 1)[0]
    return float(slope), float(np.exp(np.mean(np.log(ns * gaps))))"""

# Part 1 handed to the package: correct numbers, but not the student's own softmax.
PACKAGE_SOFTMAX = """from scalinglab.losses import softmax as _package_softmax


def softmax(z):
    return _package_softmax(np.asarray(z, dtype=np.float64))"""

PACKAGE_ENTROPY = """import scalinglab.losses


def entropy(p):
    return scalinglab.losses.entropy(np.asarray(p, dtype=np.float64))"""


# Part 1 gamed: right on a batch of logits (the visible (2, 3) input, and Part 3's gradient,
# which calls it, keeps full marks), an empty array that broadcasts against anything
# otherwise -- np.allclose(empty, reference) and np.all(np.isfinite(empty)) are vacuously
# True, so only the test cell's shape checks catch it.
EMPTY_SOFTMAX = """def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    if np.ndim(z) == 2:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return np.zeros((0,) + np.shape(z))"""


@pytest.mark.slow
def test_plausible_mistakes_lose_exactly_their_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {
            "softmax": NAIVE_SOFTMAX,
            "cross_entropy": CE_VIA_LOG_OF_SOFTMAX,
            "entropy_rate": UNWEIGHTED_RATE,
            "predict_l1": L1_NEAR_FLOOR,
            "gap_law": GAP_WITHOUT_THE_HALF,
        },
        {
            "test_softmax": 2,
            "test_cross_entropy": 2,
            "test_entropy_rate": 3,
            "test_predict_l1": 2,
            "test_gap_law": 2,
        },
    )


@pytest.mark.slow
def test_calling_the_packages_implementation_scores_zero_on_that_part_only(course, tmp_path):
    """The `# forbid:` lines of the test cells: a softmax or entropy that hands the work to
    scalinglab.losses gives right numbers but loses exactly its own part (Part 3's gradient,
    which calls the student's softmax, is not affected)."""
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"softmax": PACKAGE_SOFTMAX, "entropy": PACKAGE_ENTROPY},
        {"test_softmax": 2, "test_entropy": 1},
    )


@pytest.mark.slow
def test_an_empty_result_that_broadcasts_loses_its_points(course, tmp_path):
    assert_mistakes_cost(course, tmp_path, A, {"softmax": EMPTY_SOFTMAX}, {"test_softmax": 2})


@pytest.mark.slow
def test_naive_softmax_passes_visible_tests_but_not_hidden_ones(course, tmp_path):
    """The visible tests use small logits on purpose: overflow is what the hidden tests
    catch, which is why students are told to write general code."""
    release = release_notebook_path(A, course)
    source = source_notebook_path(A, course)
    import nbformat

    nb = nbformat.read(source, 4)
    student = nbformat.read(release, 4)
    # a student who solved everything, with the naive softmax
    by_id = {c.metadata.nbgrader["grade_id"]: c for c in nb.cells}
    for cell in student.cells:
        gid = cell.metadata.nbgrader["grade_id"]
        if cell.metadata.nbgrader.get("solution"):
            cell.source = NAIVE_SOFTMAX if gid == "softmax" else by_id[gid].source
    path = tmp_path / "student.ipynb"
    nbformat.write(student, path)
    visible = {r.grade_id: r.passed for r in check_notebook(path)}
    assert all(visible.values()), visible
    assert autograde(path, A, course, sandbox=SANDBOX).lost() == ["test_softmax"]


@pytest.mark.slow
def test_broken_and_hostile_submissions_never_break_the_gradebook(course, tmp_path):
    source = source_notebook_path(A, course)
    endless = with_solution_replaced(
        source, {"softmax": "while True:\n    pass"}, tmp_path / "endless.ipynb"
    )
    vandal = with_solution_replaced(
        source,
        {
            "entropy": (
                "import os, glob\n"
                "for f in glob.glob('**/*', recursive=True) + glob.glob('../../../*.db'):\n"
                "    try:\n        os.remove(f)\n    except OSError:\n        pass\n"
                "import sys\nsys.exit(3)"
            )
        },
        tmp_path / "vandal.ipynb",
    )
    garbage = tmp_path / "garbage.ipynb"
    garbage.write_text("{ this is not json")
    db = tmp_path / "gradebook.db"
    reports = grade_submissions(
        A,
        [("full", source), ("endless", endless), ("vandal", vandal), ("garbage", garbage)],
        gradebook=db,
        course=course,
        timeout=240,
        cell_timeout=15,
        sandbox=SANDBOX,
    )
    by_student = {r.student: r for r in reports}
    assert by_student["full"].score == by_student["full"].max_score == 14
    assert by_student["garbage"].score == 0 and "not a notebook" in by_student["garbage"].error
    # the endless loop is interrupted by nbgrader's cell timeout or the wall clock; the other
    # parts are graded where the run got that far, and the loop's own part scores 0
    assert "test_softmax" in by_student["endless"].lost()
    assert "test_entropy" in by_student["vandal"].lost()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = dict(
            conn.execute(
                "SELECT student.id, SUM(grade.auto_score) FROM grade "
                "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
                "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
                "JOIN student ON submitted_assignment.student_id = student.id GROUP BY student.id"
            ).fetchall()
        )
    assert rows["full"] == 14
    # a file that is not a notebook is reported, not recorded
    assert set(rows) == {"full", "endless", "vandal"}
    assert json.loads(source.read_text())  # the solutions were out of the vandal's reach
