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

# Part 4: fit every record, early-training phases and bigram-stuck models included.
NO_DATA_SELECTION = """def predict_loss(records, n_params, examples_seen):
    N = np.array([r["n_params"] for r in records], dtype=float)
    D = np.array([r["examples_seen"] for r in records], dtype=float)
    L = np.array([r["test_loss"] for r in records])
    return float(fit_chinchilla(N, D, L)(n_params, examples_seen))"""


@pytest.mark.slow
def test_plausible_mistakes_lose_exactly_their_points(course, tmp_path):
    report = assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {
            "power_law_fit": STRAIGHT_LINE,
            "compute_optimal": SWAPPED_EXPONENTS,
            "predict": NO_DATA_SELECTION,
        },
        {"test_power_law_fit": 3, "test_compute_optimal": 2, "test_predict": 3},
    )
    assert report.max_score == 10
