"""Chapter 7's exercise: plausible wrong answers lose exactly their parts' points."""

from __future__ import annotations

import pytest

from conftest import assert_mistakes_cost

A = "07-emergence"

MEAN_P_POW_L = """def answer_metrics(probs):
    probs = np.asarray(probs, dtype=np.float64)
    # averages the probabilities first, then raises to the power L
    return float(np.mean(probs) ** probs.shape[1]), float(probs.mean())


def predicted_exact_match(ce, L):
    return np.exp(-L * np.asarray(ce, dtype=np.float64))"""

JENSEN_BOUND_AS_EXACT_MATCH = """def answer_metrics(probs):
    probs = np.asarray(probs, dtype=np.float64)
    # exp(-L * mean CE): exact for one answer, only a lower bound averaged over answers
    return float(np.exp(probs.shape[1] * np.log(probs).mean())), float(probs.mean())


def predicted_exact_match(ce, L):
    return np.exp(-L * np.asarray(ce, dtype=np.float64))"""

CALLS_THE_PACKAGE = """from scalinglab.emergence import answer_metrics as _package_metrics


def answer_metrics(probs):
    m = _package_metrics(np.asarray(probs, dtype=np.float64))
    return m["expected_exact_match"], m["expected_token_accuracy"]


def predicted_exact_match(ce, L):
    return np.exp(-L * np.asarray(ce, dtype=np.float64))"""

PROBE_FROM_THE_PACKAGE = """from scalinglab.emergence import apply_linear_probe, fit_linear_probe, r2_score as _r2


def probe_r2(f_train, y_train, f_test, y_test):
    w = fit_linear_probe(np.asarray(f_train), np.asarray(y_train))
    return _r2(np.asarray(y_test), apply_linear_probe(w, np.asarray(f_test)))"""

PREDICTS_CHANCE = """plateau_prediction = 1 / 23  # 'it has not generalised, so chance'"""

FIRST_CROSSING = """def step_reached(steps, acc, threshold):
    # the first crossing: counts a single lucky evaluation
    for s, a in zip(steps, acc):
        if a >= threshold:
            return int(s)
    return None


def grokking_delay(log):
    return step_reached(log["step"], log["test_acc"], 0.95) / step_reached(
        log["step"], log["train_acc"], 0.99
    )"""

UNNORMALISED_UPDATE = """def belief_update(eta, T, a):
    eta = np.asarray(eta, dtype=np.float64)
    return eta @ np.asarray(T, dtype=np.float64)[a]  # forgets to divide by P(a | eta)


def belief_trajectory(T, pi, tokens):
    eta = np.asarray(pi, dtype=np.float64)
    out = []
    for a in tokens:
        eta = belief_update(eta, T, a)
        out.append(eta)
    return np.array(out)"""

R2_ON_TRAINING_DATA = """def probe_r2(f_train, y_train, f_test, y_test):
    d, k = np.shape(f_train)[-1], np.shape(y_train)[-1]
    x = np.asarray(f_train, dtype=np.float64).reshape(-1, d)
    y = np.asarray(y_train, dtype=np.float64).reshape(-1, k)
    w, *_ = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)
    pred = np.hstack([x, np.ones((len(x), 1))]) @ w  # scores the fit on its own data
    ss_res = ((y - pred) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1 - ss_res / ss_tot))"""

CEIL_LONGEST_ANSWER = """def params_for_half(ns, ce, L):
    ns = np.asarray(ns, dtype=np.float64)
    hit = np.flatnonzero(np.exp(-L * np.asarray(ce, dtype=np.float64)) >= 0.5)
    return None if len(hit) == 0 else float(ns[hit[0]])


def longest_answer(E):
    return int(np.ceil(np.log(2) / E))  # rounds up: one token too long


conclusion = "more parameters\""""


@pytest.mark.slow
def test_plausible_mistakes_lose_exactly_their_points(course, tmp_path):
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {
            "metrics": MEAN_P_POW_L,
            "predict": PREDICTS_CHANCE,
            "grok_step": FIRST_CROSSING,
            "belief": UNNORMALISED_UPDATE,
            "probe": R2_ON_TRAINING_DATA,
            "length": CEIL_LONGEST_ANSWER,
        },
        {
            "test_metrics": 3,
            "test_predict": 2,
            "test_grok_step": 2,
            "test_belief": 3,
            "test_probe": 3,
            "test_length": 2,
        },
    )


@pytest.mark.slow
def test_the_jensen_bound_is_not_the_expected_exact_match(course, tmp_path):
    assert_mistakes_cost(
        course, tmp_path, A, {"metrics": JENSEN_BOUND_AS_EXACT_MATCH}, {"test_metrics": 3}
    )


@pytest.mark.slow
def test_calling_the_package_scores_zero_on_that_part(course, tmp_path):
    # Both replacements give the right numbers; only the grader's "# forbid:" rule (the
    # lead's new grader) makes them lose their parts.
    assert_mistakes_cost(
        course,
        tmp_path,
        A,
        {"metrics": CALLS_THE_PACKAGE, "probe": PROBE_FROM_THE_PACKAGE},
        {"test_metrics": 3, "test_probe": 3},
    )
