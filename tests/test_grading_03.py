"""Chapter 3's exercise: plausible wrong answers lose exactly their parts' points, and a
mistake the visible tests cannot see is caught by the hidden ones."""

from __future__ import annotations

import nbformat
import pytest

from conftest import SANDBOX, assert_mistakes_cost
from scalinglab.grading import (
    autograde,
    check_notebook,
    release_notebook_path,
    source_notebook_path,
)

A = "03-intrinsic-dimension"

UNCENTRED_PCA = """def dimension_summary(x):
    x = np.asarray(x, dtype=np.float64)
    s = np.linalg.svd(x, compute_uv=False)  # forgets to centre: the mean becomes a "component"
    explained = np.cumsum(s**2) / np.sum(s**2)
    pca95 = int(np.searchsorted(explained, 0.95) + 1)
    return {"ambient": x.shape[1], "pca95": pca95, "twonn": twonn(x)}


summary = dimension_summary(digits_x)"""

HIDDEN_LAYERS_ONLY = """def layer_dimensions(model, x):
    with torch.no_grad():
        hidden = model.hidden(torch.as_tensor(x, dtype=torch.float32))
    return [twonn(h.numpy().astype(np.float64)) for h in hidden]  # leaves out the input


trained_dims = layer_dimensions(model, x_test)"""

RATIOS_WITH_DUPLICATES = """def twonn_ratios(x):
    x = np.asarray(x, dtype=np.float64)  # duplicates kept: r1 = 0 and mu = inf for them
    dist, _ = NearestNeighbors(n_neighbors=2).fit(x).kneighbors()
    return dist[:, 1] / dist[:, 0]"""


@pytest.mark.slow
def test_plausible_mistakes_lose_exactly_their_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"dimension_summary": UNCENTRED_PCA, "layer_dimensions": HIDDEN_LAYERS_ONLY},
        {"test_dimension_summary": 2, "test_layer_dimensions": 3},
    )


@pytest.mark.slow
def test_ignoring_duplicates_passes_visible_tests_but_not_hidden_ones(course, tmp_path):
    """The visible data have no duplicate rows; the hidden tests add some. Parts 3-5 run on
    data without duplicates, so only the two parts that test duplicates lose points."""
    source = nbformat.read(source_notebook_path(A, course), 4)
    student = nbformat.read(release_notebook_path(A, course), 4)
    solved = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells}
    for cell in student.cells:
        gid = cell.metadata.nbgrader["grade_id"]
        if cell.metadata.nbgrader.get("solution"):
            cell.source = RATIOS_WITH_DUPLICATES if gid == "twonn_ratios" else solved[gid]
    path = tmp_path / "student.ipynb"
    nbformat.write(student, path)
    visible = {r.grade_id: r.passed for r in check_notebook(path)}
    assert all(visible.values()), visible
    report = autograde(path, A, course, sandbox=SANDBOX)
    assert report.error is None, report.summary()
    assert report.lost() == ["test_twonn_fit", "test_twonn_ratios"]


# Part 6, predict-then-run: "noise averages out" -- the plausible wrong intuition.
NOISE_AVERAGES_OUT = """prediction_full = "about 2"
prediction_decimated = "further from 2\""""

# Part 7: returns the estimates instead of the ratios d_hat / d (and concludes from them).
ESTIMATES_NOT_RATIOS = """def dimension_ratios(dims, n, seed):
    return [id_estimate(sample_hypersphere(n, d, np.random.default_rng(seed))) for d in dims]


ratios = dimension_ratios(DIMS, 1000, seed=0)
first_failing_d = next((d for d, r in zip(DIMS, ratios) if r < 0.9 * d), None)
high_d_bias = "too low\""""

# Part 5 done by calling the package's own implementation: same numbers, but not the
# student's code. Scores 0 on that part only under the new grader's `# forbid:` rule (the
# current grader, which compares numbers only, gives it full marks: this test fails until the
# lead's new grader is merged).
PACKAGE_LAYER_DIMENSIONS = """import scalinglab.intrinsic_dimension


def layer_dimensions(model, x):
    return scalinglab.intrinsic_dimension.layer_dimensions(model, x)


trained_dims = layer_dimensions(model, x_test)"""


@pytest.mark.slow
def test_wrong_prediction_and_unnormalised_ratios_lose_exactly_their_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"noise_prediction": NOISE_AVERAGES_OUT, "dimension_ratios": ESTIMATES_NOT_RATIOS},
        {"test_noise_prediction": 2, "test_dimension_ratios": 3},
    )


@pytest.mark.slow
def test_calling_the_package_implementation_scores_zero_on_that_part(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"layer_dimensions": PACKAGE_LAYER_DIMENSIONS},
        {"test_layer_dimensions": 3},
    )
