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


# Part 5, predict-then-run: counts features (p = n) instead of trainable parameters (p * K).
PEAK_AT_N = """predicted_params_at_peak = 40  # n training examples"""

# Part 6: returns the best test error instead of the final one, and concludes from the
# usual story that clean labels cannot peak.
WRONG_FINAL_AND_CONCLUSION = """def peak_and_final(noises):
    out = []
    for sigma in noises:
        task = teacher_data(n=60, d=8, noise=sigma, n_test=1000, seed=0)
        test = []
        for p in ps:
            beta = np.linalg.lstsq(Phi_train[:, :p], task["y_train"], rcond=None)[0]
            test.append(np.mean((Phi_test[:, :p] @ beta - task["y_test"]) ** 2))
        out.append([float(max(test)), float(min(test))])
    return out


results = peak_and_final(NOISES)
noise_effect = "grows"
peak_without_noise = 'no'"""


# Part 3 done by calling the package's own ridge: right numbers, not the student's code.
# Scores 0 on that part only under the new grader's `# forbid:` rule; with the current
# grader (numbers only) it gets full marks, so this test fails until the lead's new grader
# is merged.
PACKAGE_RIDGE = """from scalinglab.random_features import ridge_fit


def ridge_solution(Phi, y, lam):
    return ridge_fit(np.asarray(Phi, dtype=np.float64), np.asarray(y, dtype=np.float64), lam)"""


@pytest.mark.slow
def test_wrong_prediction_and_noise_conclusions_lose_exactly_their_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"multi_prediction": PEAK_AT_N, "peak_heights": WRONG_FINAL_AND_CONCLUSION},
        {"test_multi_prediction": 2, "test_peak_heights": 3},
    )


@pytest.mark.slow
def test_calling_the_package_implementation_scores_zero_on_that_part(course, tmp_path):
    assert_mistakes_cost(course, tmp_path, A, {"ridge": PACKAGE_RIDGE}, {"test_ridge": 3})
