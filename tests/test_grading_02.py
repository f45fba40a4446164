"""Chapter 2's exercise: plausible wrong answers lose exactly their parts' points."""

from __future__ import annotations

import pytest

from conftest import assert_mistakes_cost

A = "02-trainability"

NO_RELU_MASK = """def two_layer_backward(params, x, y):
    W1, b1, W2, b2 = (np.asarray(params[k], dtype=np.float64) for k in ("W1", "b1", "W2", "b2"))
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    n = len(x)
    z1 = x @ W1.T + b1
    h = np.maximum(z1, 0.0)
    z2 = h @ W2.T + b2
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), y] -= 1.0
    g2 = p / n
    g1 = g2 @ W2  # forgets relu's derivative: units that were off still pass gradient back
    return {"W1": g1.T @ x, "b1": g1.sum(axis=0), "W2": g2.T @ h, "b2": g2.sum(axis=0)}"""

SINGLE_UNIT = """def layer_second_moments(x, weights, activation):
    h = np.asarray(x, dtype=np.float64)
    phi = {"relu": lambda u: np.maximum(u, 0.0), "tanh": np.tanh}[activation]
    out = []
    for W in weights:
        h = phi(h @ np.asarray(W, dtype=np.float64).T)
        out.append(np.mean(h[:, 0] ** 2))  # one unit instead of the whole layer
    return np.array(out)"""

FAN_OUT = """def stable_weight_variance(fan_out, fan_in, negative_slope=0.0):
    return 2.0 / ((1.0 + negative_slope**2) * fan_out)"""

PACKAGE_MOMENTS = """from scalinglab.signal_propagation import layer_second_moments as _package_moments


def layer_second_moments(x, weights, activation):
    return _package_moments(x, weights, activation)"""

SIGN_ERROR = """predicted_log2_ratio = L - 1  # "the signal grows with depth\""""

HE_NOT_CRITICAL = """critical_sigma_w2 = 2.0  # He's value for ReLU, not tanh's critical point"""

# a grid step of 0.25 passes the visible window [0.8, 1.25] but not the hidden +-0.15
COARSE_CRITICAL = """critical_sigma_w2 = 1.25  # first point of a 0.25 grid where q_200 > 0.01"""

FIRST_AND_LAST_KEYS = """def optimal_lr(lrs, losses):
    losses = np.array([np.inf if v is None else v for v in losses], dtype=np.float64)
    losses[~np.isfinite(losses)] = np.inf
    return float(np.asarray(lrs, dtype=np.float64)[np.argmin(losses)])


def optimum_shift_octaves(table):
    keys = list(table)  # the first and last widths of the dict, not the smallest and largest
    return float(np.log2(optimal_lr(*table[keys[-1]]) / optimal_lr(*table[keys[0]])))"""

SHIFT_REVERSED = """def optimal_lr(lrs, losses):
    losses = np.array([np.inf if v is None else v for v in losses], dtype=np.float64)
    losses[~np.isfinite(losses)] = np.inf
    return float(np.asarray(lrs, dtype=np.float64)[np.argmin(losses)])


def optimum_shift_octaves(table):
    w_min, w_max = min(table), max(table)
    return float(np.log2(optimal_lr(*table[w_min]) / optimal_lr(*table[w_max])))  # upside down"""


@pytest.mark.slow
def test_plausible_mistakes_lose_exactly_their_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {
            "backward": NO_RELU_MASK,
            "moments": SINGLE_UNIT,
            "stable": FAN_OUT,
            "predict": SIGN_ERROR,
            "critical": HE_NOT_CRITICAL,
            "lr": SHIFT_REVERSED,
        },
        {
            "test_backward": 3,
            "test_moments": 2,
            "test_stable": 2,
            "test_predict": 2,
            "test_critical": 2,
            "test_lr": 3,
        },
    )


@pytest.mark.slow
def test_near_misses_pass_the_visible_tests_and_lose_the_hidden_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"critical": COARSE_CRITICAL, "lr": FIRST_AND_LAST_KEYS},
        {"test_critical": 2, "test_lr": 3},
    )


@pytest.mark.slow
def test_calling_the_package_implementation_scores_zero(course, tmp_path):
    assert_mistakes_cost(course, tmp_path, A, {"moments": PACKAGE_MOMENTS}, {"test_moments": 2})
