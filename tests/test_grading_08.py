"""Chapter 8's exercise: plausible wrong answers lose exactly their parts' points."""

from __future__ import annotations

import pytest

from conftest import assert_mistakes_cost

A = "08-many-skills"

# Part 1: p_k ~ k^-alpha (the Zipf exponent mistaken for alpha + 1)
EXPONENT_ALPHA = """def zipf_frequencies(n_tasks, alpha):
    p = np.arange(1, n_tasks + 1, dtype=np.float64) ** -alpha
    return p / p.sum()


def expected_loss(alpha, n_tasks, n_learned):
    p = zipf_frequencies(n_tasks, alpha)
    return float(LN2 * p[int(n_learned):].sum())"""

# Part 1: counts quantum n as not learned (off by one)
OFF_BY_ONE = """def zipf_frequencies(n_tasks, alpha):
    p = np.arange(1, n_tasks + 1, dtype=np.float64) ** -(alpha + 1.0)
    return p / p.sum()


def expected_loss(alpha, n_tasks, n_learned):
    p = zipf_frequencies(n_tasks, alpha)
    return float(LN2 * p[max(int(n_learned) - 1, 0):].sum())"""

# Part 2: the data exponent taken equal to the parameter exponent
DATA_LIKE_PARAMS = """def scaling_exponents(alpha):
    return float(alpha), float(alpha), float(alpha / (alpha + 2))"""

# Part 2: compute exponent with C ~ D only
COMPUTE_FROM_DATA = """def scaling_exponents(alpha):
    return float(alpha), float(alpha / (alpha + 1)), float(alpha / (alpha + 1))"""

# Part 3: learned only after *more* than tau examples
STRICT_COUNT = """def simulate_memoriser(alpha, n_tasks, tau, D_grid, rng):
    D_grid = np.asarray(D_grid, dtype=np.int64)
    p = np.arange(1, n_tasks + 1, dtype=np.float64) ** -(alpha + 1.0)
    p /= p.sum()
    stream = rng.choice(n_tasks, size=int(D_grid.max()), p=p)
    out = []
    for D in D_grid:
        counts = np.bincount(stream[:D], minlength=n_tasks)
        out.append(LN2 * p[counts <= tau].sum())
    return np.array(out)"""

# Part 3: counts the quanta not yet learned instead of weighting them by frequency
UNWEIGHTED = """def simulate_memoriser(alpha, n_tasks, tau, D_grid, rng):
    D_grid = np.asarray(D_grid, dtype=np.int64)
    p = np.arange(1, n_tasks + 1, dtype=np.float64) ** -(alpha + 1.0)
    p /= p.sum()
    stream = rng.choice(n_tasks, size=int(D_grid.max()), p=p)
    out = []
    for D in D_grid:
        counts = np.bincount(stream[:D], minlength=n_tasks)
        out.append(LN2 * np.mean(counts < tau))
    return np.array(out)"""

# Part 4: frequencies ~ k^-alpha in the prediction (for the student's own quantum k)
PREDICT_WRONG_EXPONENT = """p = np.arange(1, 101) ** -1.0
predicted_D = 5 / (p[VARIANT["k_skill"] - 1] / p.sum())"""

# Part 4: one example is enough
PREDICT_ONE_EXAMPLE = """p = np.arange(1, 101) ** -2.0
predicted_D = 1 / (p[VARIANT["k_skill"] - 1] / p.sum())"""

# Part 4: the quantum 20 of the public example, not the student's own k
PREDICT_QUANTUM_20 = """p = np.arange(1, 101) ** -2.0
predicted_D = 5 / (p[19] / p.sum())"""

# Part 5: returns the measured slope, not alpha
SLOPE_NOT_ALPHA = """def infer_alpha(D, L):
    return float(-np.polyfit(np.log(np.asarray(D, float)), np.log(np.asarray(L, float)), 1)[0])"""

# Part 5: inverts alpha_D = alpha / (alpha + 1) wrongly
WRONG_INVERSION = """def infer_alpha(D, L):
    s = -np.polyfit(np.log(np.asarray(D, float)), np.log(np.asarray(L, float)), 1)[0]
    return float(s / (1 + s))"""

CALLS_THE_PACKAGE = """from scalinglab.data.sparse_parity import zipf_frequencies as _z
from scalinglab.quanta import tail_loss as _tail


def zipf_frequencies(n_tasks, alpha):
    return _z(n_tasks, alpha)


def expected_loss(alpha, n_tasks, n_learned):
    return float(_tail(_z(n_tasks, alpha), n_learned))"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "replacements, lost",
    [
        (
            {"loss": EXPONENT_ALPHA, "simulate": UNWEIGHTED, "infer": SLOPE_NOT_ALPHA},
            {"test_loss": 3, "test_simulate": 3, "test_infer": 2},
        ),
        (
            {"loss": OFF_BY_ONE, "exponents": DATA_LIKE_PARAMS, "predict": PREDICT_WRONG_EXPONENT},
            {"test_loss": 3, "test_exponents": 2, "test_predict": 2},
        ),
        ({"predict": PREDICT_QUANTUM_20}, {"test_predict": 2}),
        (
            {
                "exponents": COMPUTE_FROM_DATA,
                "simulate": STRICT_COUNT,
                "predict": PREDICT_ONE_EXAMPLE,
                "infer": WRONG_INVERSION,
            },
            {"test_exponents": 2, "test_simulate": 3, "test_predict": 2, "test_infer": 2},
        ),
    ],
    ids=[
        "zipf-exponent-unweighted-slope",
        "off-by-one-data-exponent",
        "another-students-quantum",
        "strict-count-inversion",
    ],
)
def test_plausible_mistakes_lose_exactly_their_points(course, tmp_path, replacements, lost):
    assert_mistakes_cost(course, tmp_path, A, replacements, lost)


@pytest.mark.slow
def test_calling_the_package_scores_zero_on_that_part(course, tmp_path):
    # right numbers, but the grader's "# forbid:" rule makes the part lose its points
    assert_mistakes_cost(course, tmp_path, A, {"loss": CALLS_THE_PACKAGE}, {"test_loss": 3})
