"""Chapter 4's exercise: plausible wrong answers lose exactly their parts' points."""

from __future__ import annotations

import pytest

from conftest import assert_mistakes_cost

A = "04-scaling-laws"

# Part 1: a straight line in log-log space -- the fit the chapter warns against (no floor).
STRAIGHT_LINE = """def fit_power_law_with_floor(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return 0.0, float(np.exp(intercept)), float(-slope)"""

# Part 2: the exponents of N_opt and D_opt swapped (a = alpha / (alpha + beta)).
SWAPPED_EXPONENTS = """def compute_optimal_allocation(C, A, B, alpha, beta):
    C = np.asarray(C, dtype=np.float64)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    return G * (C / 6.0) ** (alpha / (alpha + beta)), (C / 6.0) ** (beta / (alpha + beta)) / G"""

# Part 4: the floor fitted instead of fixed to the known one (E a free parameter).
FLOOR_FITTED = """def predict_loss(points, n_params, examples_seen, floor):
    N = np.array([p["N"] for p in points], dtype=float)
    D = np.array([p["D"] for p in points], dtype=float)
    L = np.array([p["L"] for p in points])
    return float(fit_chinchilla(N, D, L)(n_params, examples_seen))"""


# Part 5: "no further gain" -- trusting that the best fitted run is as good as it gets.
NO_FURTHER_GAIN = 'best_predictor = "no further gain"\nlaw_vs_measured = "below"'

# Part 6: the sign of the exponent flipped, and the trends with it.
FLIPPED_RATIO = """def tokens_per_param_exponent(alpha, beta):
    return float((beta - alpha) / (alpha + beta))


trend_hoffmann = "shrinks"
trend_refit = "grows"""

# Part 4: the naive answers the part is scored against -- a constant just above the floor,
# and copying the best (most expensive) fitted run.
CONSTANT_ABOVE_FLOOR = """def predict_loss(points, n_params, examples_seen, floor):
    return floor + 0.05"""

COPY_BEST_RUN = """def predict_loss(points, n_params, examples_seen, floor):
    return min(p["L"] for p in points)"""

# Part 3: a constant answer (every run, sorted by compute) and a frontier that keeps the
# first point of each compute instead of the best one (ties sorted by position, not by loss).
EVERY_POINT = """def frontier_indices(compute, loss):
    return np.argsort(np.asarray(compute, dtype=np.float64), kind="stable")"""

TIES_BY_POSITION = """def frontier_indices(compute, loss):
    compute = np.asarray(compute, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    keep, best = [], np.inf
    for i in np.argsort(compute, kind="stable"):
        if loss[i] <= best:
            keep.append(i)
            best = loss[i]
    return np.array(keep, dtype=int)"""

# Parts 1-3 handed to the package: right numbers, not the student's own code.
PACKAGE_FIT = """from scalinglab.fitting import fit_power_law


def fit_power_law_with_floor(x, y):
    fit = fit_power_law(x, y)
    return fit.E, fit.A, fit.alpha"""

PACKAGE_ALLOCATION = """import scalinglab.fitting


def compute_optimal_allocation(C, A, B, alpha, beta):
    params = dict(E=1.0, A=A, B=B, alpha=alpha, beta=beta)
    return scalinglab.fitting.compute_optimal(np.asarray(C, dtype=np.float64), params)"""

PACKAGE_FRONTIER = """def frontier_indices(compute, loss):
    return compute_frontier(compute=np.asarray(compute, float), loss=np.asarray(loss, float)).index"""


@pytest.mark.slow
def test_plausible_mistakes_lose_exactly_their_points(course, tmp_path):
    report = assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {
            "power_law_fit": STRAIGHT_LINE,
            "compute_optimal": SWAPPED_EXPONENTS,
            "predict": FLOOR_FITTED,
            "baselines": NO_FURTHER_GAIN,
            "ratio": FLIPPED_RATIO,
        },
        {
            "test_power_law_fit": 3,
            "test_compute_optimal": 2,
            "test_predict": 3,
            "test_baselines": 2,
            "test_ratio": 2,
        },
    )
    assert report.max_score == 14


@pytest.mark.slow
def test_a_constant_or_a_copied_answer_fails_the_prediction_part(course, tmp_path):
    for wrong in (CONSTANT_ABOVE_FLOOR, COPY_BEST_RUN):
        assert_mistakes_cost(course, tmp_path, A, {"predict": wrong}, {"test_predict": 3})


@pytest.mark.slow
def test_a_constant_or_a_sloppy_frontier_fails_part_3(course, tmp_path):
    for wrong in (EVERY_POINT, TIES_BY_POSITION):
        assert_mistakes_cost(course, tmp_path, A, {"frontier": wrong}, {"test_frontier": 2})


@pytest.mark.slow
def test_calling_the_packages_implementation_scores_zero_on_that_part_only(course, tmp_path):
    """The `# forbid:` lines: Parts 1-3 written by calling scalinglab.fitting's own
    fit_power_law, compute_optimal and compute_frontier lose exactly their points."""
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {
            "power_law_fit": PACKAGE_FIT,
            "compute_optimal": PACKAGE_ALLOCATION,
            "frontier": PACKAGE_FRONTIER,
        },
        {"test_power_law_fit": 3, "test_compute_optimal": 2, "test_frontier": 2},
    )
