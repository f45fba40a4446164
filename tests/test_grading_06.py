"""Chapter 6's exercise: plausible wrong answers lose exactly their parts' points."""

from __future__ import annotations

import pytest

from conftest import assert_mistakes_cost

A = "06-double-descent"

# The normal equations: right for p < n, but Phi^T Phi is singular once p > n.
NORMAL_EQUATIONS = """def min_norm_solution(Phi, y):
    Phi = np.asarray(Phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return np.linalg.solve(Phi.T @ Phi, Phi.T @ y)"""

# Forgets the biases: counts only weight matrices, so the predicted width is too large.
NO_BIASES = """def mlp_param_count(in_dim, width, depth, out_dim):
    dims = [in_dim] + [width] * depth + [out_dim]
    return int(sum(a * b for a, b in zip(dims[:-1], dims[1:])))


def predicted_peak_width(n_train, in_dim, depth, out_dim):
    width = 1
    while mlp_param_count(in_dim, width, depth, out_dim) < n_train:
        width += 1
    return width"""

# Adds lambda to every entry of Phi^T Phi instead of its diagonal.
LAMBDA_EVERYWHERE = """def ridge_solution(Phi, y, lam):
    Phi = np.asarray(Phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return np.linalg.solve(Phi.T @ Phi + lam, Phi.T @ y)"""

# Returns the position in the sweep instead of the number of features.
INDEX_NOT_VALUE = """def interpolation_threshold(ps, train_mse, tol=1e-10):
    hits = np.flatnonzero(np.asarray(train_mse) <= tol)
    return None if len(hits) == 0 else int(hits[0])"""


@pytest.mark.slow
def test_min_norm_and_parameter_count_mistakes_lose_exactly_their_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"min_norm": NORMAL_EQUATIONS, "params": NO_BIASES},
        {"test_min_norm": 2, "test_params": 3},
    )


@pytest.mark.slow
def test_ridge_and_threshold_mistakes_lose_exactly_their_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"ridge": LAMBDA_EVERYWHERE, "threshold": INDEX_NOT_VALUE},
        {"test_ridge": 3, "test_threshold": 2},
    )
