"""The grading pipeline, for every assignment under solutions/ (real nbgrader runs).

For each assignment: the solution scores full marks through ``nbgrader autograde`` (with
the hidden tests; graded under the id the solutions carry, ``self-study``, which per-student
variants check; manually graded cells are not part of the autograded maximum), the
untouched release scores zero, the release holds no solution code
and no hidden test, and the committed ``exercises/`` equals a fresh generation.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from conftest import SANDBOX, assignments
from scalinglab.grading import (
    autograde,
    find_leaks,
    graded_parts,
    release,
    release_notebook_path,
    source_notebook_path,
)
from scalinglab.grading.variants import SELF_STUDY

ASSIGNMENTS = assignments()


def _normalised(path):
    """Notebook JSON without volatile fields, for comparing two generations."""
    nb = json.loads(path.read_text())
    nb.get("metadata", {}).pop("widgets", None)
    return nb


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_contract_at_least_four_graded_parts(assignment, course):
    parts = graded_parts(nbformat.read(source_notebook_path(assignment, course), 4))
    assert len(parts) >= 4
    assert all(p.points > 0 for p in parts)
    assert len({p.grade_id for p in parts}) == len(parts)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_folder_holds_only_the_notebook(assignment, course):
    files = [p for p in (course.source_dir / assignment).rglob("*") if p.is_file()]
    assert [p.suffix for p in files] == [".ipynb"], files


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_fresh_and_leak_free(assignment, course, tmp_path):
    fresh = release(assignment, course, release_dir=tmp_path)
    committed = sorted((course.release_dir / assignment).rglob("*"))
    assert [p.name for p in committed if p.is_file()] == [p.name for p in fresh]
    for nb_path in fresh:
        assert _normalised(nb_path) == _normalised(
            course.release_dir / assignment / nb_path.name
        ), f"exercises/{assignment} is stale: run `scalinglab release {assignment}`"
    source = nbformat.read(source_notebook_path(assignment, course), 4)
    released = nbformat.read(release_notebook_path(assignment, course), 4)
    assert find_leaks(released, source) == []
    assert all(not cell.get("outputs") for cell in released.cells if cell.cell_type == "code")


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(assignment, course):
    report = autograde(
        source_notebook_path(assignment, course),
        assignment,
        course,
        student=SELF_STUDY,
        sandbox=SANDBOX,
    )
    assert report.error is None, report.summary()
    assert report.max_score > 0
    assert report.score == report.max_score, report.summary()


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_scores_zero(assignment, course):
    report = autograde(
        release_notebook_path(assignment, course),
        assignment,
        course,
        student=SELF_STUDY,
        sandbox=SANDBOX,
    )
    assert report.error is None, report.summary()
    assert report.score == 0, report.summary()
    assert report.max_score > 0
