"""Random-features regression against NumPy, SciPy, scikit-learn and closed-form theory."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from sklearn.linear_model import Ridge

from scalinglab.double_descent import interpolation_threshold, locate_peak
from scalinglab.random_features import (
    RandomFeatures,
    isotropic_linear_data,
    marchenko_pastur_edges,
    min_norm_fit,
    noise_amplification,
    ridge_fit,
    ridgeless_risk_isotropic,
    sweep_features,
    sweep_samples_isotropic,
    teacher_data,
)


@pytest.mark.parametrize("p", [20, 50, 80])
def test_min_norm_fit_matches_pinv_and_scipy_lstsq(p):
    rng = np.random.default_rng(p)
    phi, y = rng.standard_normal((50, p)), rng.standard_normal(50)
    beta = min_norm_fit(phi, y)
    np.testing.assert_allclose(beta, np.linalg.pinv(phi) @ y, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(beta, scipy.linalg.lstsq(phi, y)[0], rtol=1e-6, atol=1e-8)


def test_min_norm_fit_interpolates_with_the_smallest_norm():
    rng = np.random.default_rng(0)
    phi, y = rng.standard_normal((30, 90)), rng.standard_normal(30)
    beta = min_norm_fit(phi, y)
    np.testing.assert_allclose(phi @ beta, y, atol=1e-9)
    # Any other interpolant differs by a null-space vector and is strictly longer.
    null = scipy.linalg.null_space(phi)[:, 0]
    other = beta + 0.1 * null
    np.testing.assert_allclose(phi @ other, y, atol=1e-9)
    assert np.linalg.norm(other) > np.linalg.norm(beta)
    # The min-norm solution lies in the row space of phi (orthogonal to its null space).
    assert abs(null @ beta) < 1e-9


@pytest.mark.parametrize(("p", "lam"), [(20, 0.3), (60, 0.3), (200, 5.0)])
def test_ridge_fit_matches_sklearn(p, lam):
    rng = np.random.default_rng(p)
    phi, y = rng.standard_normal((60, p)), rng.standard_normal(60)
    ref = Ridge(alpha=lam, fit_intercept=False, solver="svd").fit(phi, y).coef_
    np.testing.assert_allclose(ridge_fit(phi, y, lam), ref, rtol=1e-7, atol=1e-10)


def test_ridge_fit_rejects_negative_strength_and_lam_zero_is_min_norm():
    rng = np.random.default_rng(1)
    phi, y = rng.standard_normal((10, 20)), rng.standard_normal(10)
    with pytest.raises(ValueError):
        ridge_fit(phi, y, -1.0)
    np.testing.assert_allclose(ridge_fit(phi, y, 0.0), np.linalg.pinv(phi) @ y, atol=1e-10)


def test_sweep_features_matches_direct_fits():
    data = teacher_data(n=40, d=5, noise=0.2, n_test=200, seed=3)
    ps, lams = [10, 40, 90], [0.0, 0.5]
    out = sweep_features(data, ps, lams=lams, seeds=[7])
    rf = RandomFeatures.draw(5, 90, seed=7)
    for j, p in enumerate(ps):
        phi_tr, phi_te = rf(data["x_train"], p), rf(data["x_test"], p)
        for k, lam in enumerate(lams):
            if lam == 0:
                beta = np.linalg.pinv(phi_tr) @ data["y_train"]
            else:
                model = Ridge(alpha=lam, fit_intercept=False).fit(phi_tr, data["y_train"])
                beta = model.coef_
            test = np.mean((phi_te @ beta - data["y_test"]) ** 2)
            np.testing.assert_allclose(out["test_mse"][k, 0, j], test, rtol=1e-6)
        sv = np.linalg.svd(phi_tr, compute_uv=False)[-1] / np.sqrt(40)
        np.testing.assert_allclose(out["min_sv"][0, j], sv, rtol=1e-8)


def test_sweep_is_deterministic():
    data = teacher_data(n=30, d=4, seed=0)
    a = sweep_features(data, [5, 30, 60], seeds=[1, 2])
    b = sweep_features(data, [5, 30, 60], seeds=[1, 2])
    np.testing.assert_array_equal(a["test_mse"], b["test_mse"])


def test_cos_features_approximate_the_gaussian_kernel():
    # Rahimi & Recht (2007): E[2 cos(w.x + b) cos(w.x' + b)] = exp(-|x - x'|^2 / 2) for
    # w ~ N(0, I), b ~ U[0, 2 pi]; our pre-activation is w.x / sqrt(d).
    d = 3
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, d))
    rf = RandomFeatures.draw(d, 200_000, kind="cos", seed=1)
    phi = rf(x)
    gram = phi @ phi.T / rf.max_features
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(gram, np.exp(-sq / (2 * d)), atol=0.01)


def test_relu_features_approximate_the_arccosine_kernel():
    # Cho & Saul (2009), degree 1: E[relu(w.x) relu(w.x')] =
    # |x||x'| (sin t + (pi - t) cos t) / (2 pi), t the angle between x and x'.
    d = 4
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, d))
    rf = RandomFeatures.draw(d, 200_000, kind="relu", seed=3)
    phi = rf(x)
    gram = phi @ phi.T / rf.max_features
    norms = np.linalg.norm(x, axis=1)
    cos_t = np.clip(x @ x.T / np.outer(norms, norms), -1, 1)
    t = np.arccos(cos_t)
    ref = np.outer(norms, norms) * (np.sin(t) + (np.pi - t) * cos_t) / (2 * np.pi) / d
    np.testing.assert_allclose(gram, ref, rtol=0.03, atol=0.005)


@pytest.mark.parametrize(("n", "p"), [(400, 200), (300, 100), (200, 400), (150, 450)])
def test_ridgeless_risk_matches_hastie_et_al_theorem(n, p):
    # Hastie, Montanari, Rosset & Tibshirani (2022), Thm 1, isotropic features.
    sigma, r = 0.5, 1.0
    risks = []
    for seed in range(30):
        data = isotropic_linear_data(n, p, sigma, r, n_test=1, seed=seed)
        beta = min_norm_fit(data["x_train"], data["y_train"])
        risks.append(np.sum((beta - data["beta"]) ** 2))  # = E_x (x.(beta_hat - beta))^2
    theory = ridgeless_risk_isotropic(p / n, sigma, r)
    assert np.mean(risks) == pytest.approx(theory, rel=0.1)


def test_underparameterized_risk_is_the_inverse_wishart_mean():
    # Finite-sample exact: E tr((X^T X)^{-1}) = p / (n - p - 1) for Gaussian X (n > p + 1),
    # so the variance of OLS is sigma^2 p / (n - p - 1) -> sigma^2 gamma / (1 - gamma).
    n, p = 120, 40
    amps = [
        noise_amplification(np.random.default_rng(s).standard_normal((n, p))) for s in range(200)
    ]
    assert np.mean(amps) == pytest.approx(p / (n - p - 1), rel=0.03)
    x = np.random.default_rng(0).standard_normal((n, p))
    np.testing.assert_allclose(noise_amplification(x), np.trace(np.linalg.inv(x.T @ x)))


def test_ridgeless_risk_formula_values():
    np.testing.assert_allclose(ridgeless_risk_isotropic(0.5, 2.0, 1.0), 4.0)  # s^2 g/(1-g)
    np.testing.assert_allclose(ridgeless_risk_isotropic(2.0, 1.0, 3.0), 9 * 0.5 + 1.0)
    assert np.isinf(ridgeless_risk_isotropic(1.0, 1.0, 1.0))


@pytest.mark.parametrize("gamma", [0.25, 0.6, 2.0])
def test_smallest_singular_value_follows_marchenko_pastur(gamma):
    n = 1500
    p = int(gamma * n)
    x = np.random.default_rng(0).standard_normal((n, p))
    s = np.linalg.svd(x / np.sqrt(n), compute_uv=False)
    lower, upper = marchenko_pastur_edges(gamma)
    # The min(n, p) non-zero eigenvalues of X^T X / n fill [(1 - sqrt g)^2, (1 + sqrt g)^2]
    # on both sides of the threshold.
    evals = s**2
    assert evals.min() == pytest.approx(lower, rel=0.1, abs=0.01)
    assert evals.max() == pytest.approx(upper, rel=0.05)


def test_marchenko_pastur_lower_edge_vanishes_at_the_threshold():
    assert marchenko_pastur_edges(1.0)[0] == 0.0
    with pytest.raises(ValueError):
        marchenko_pastur_edges(0.0)


def test_random_features_peak_sits_at_p_equals_n_and_ridge_removes_it():
    n = 100
    data = teacher_data(n=n, d=10, noise=0.3, n_test=1000, seed=0)
    ps = np.unique(np.r_[np.arange(10, 300, 10), n])
    out = sweep_features(data, ps, lams=[0.0, 1.0], seeds=[0, 1, 2])
    ridgeless = np.median(out["test_mse"][0], axis=0)
    ridge = np.median(out["test_mse"][1], axis=0)
    peak = locate_peak(ps, ridgeless)
    assert 0.8 * n <= peak <= 1.2 * n
    # The training error reaches zero exactly when p >= n (rank n a.s.).
    assert interpolation_threshold(ps, np.median(out["train_mse"][0], axis=0), tol=1e-12) == n
    # The smallest singular value dips to ~0 at p = n.
    assert np.argmin(out["min_sv"][0]) == list(ps).index(n)
    # Ridge: no bump worth the name; ridgeless: a tall one.
    assert ridgeless.max() > 5 * ridgeless[-1]
    assert ridge[ps >= 50].max() < 1.5 * ridge[-1]


def test_sample_wise_double_descent_more_data_hurts_near_p():
    p, sigma, r = 40, 0.5, 1.0
    ns = np.array([20, 30, 38, 42, 60, 160])
    risk = np.median(sweep_samples_isotropic(ns, p, sigma, r, seeds=range(15)), axis=0)
    assert risk[2] > risk[0]  # n = 38 is worse than n = 20 ...
    assert risk[-1] < risk[2]  # ... and plenty of data fixes it
    # Far from the threshold the risk matches Hastie et al. (finite-n, so loosely).
    assert risk[-1] == pytest.approx(ridgeless_risk_isotropic(p / 160, sigma, r), rel=0.3)


def test_page_setup_second_descent_ends_below_the_classical_sweet_spot():
    # The chapter's configuration: n = 200, d = 20, p up to 10 n, three feature draws.
    n = 200
    data = teacher_data(n=n, d=20, noise=0.3, n_test=2000, seed=0)
    ps = np.unique(np.r_[np.round(np.geomspace(10, 2000, 40)).astype(int), n])
    out = sweep_features(data, ps, lams=[0.0, 0.1, 1.0], seeds=[0, 1, 2])
    test = np.median(out["test_mse"], axis=1)
    assert locate_peak(ps, test[0]) == n
    assert test[0, -1] < test[0, ps < n].min()  # the second descent beats the U's bottom
    # lam = 0.1 shrinks the peak, lam = 1 removes it.
    at_n = list(ps).index(n)
    assert test[1, at_n] < test[0, at_n] / 100
    assert test[2, at_n] < 1.1 * test[2, ps < n].min()  # no higher than before the threshold


def test_label_noise_raises_the_peak_but_misspecification_alone_gives_one():
    """Chapter 6 and its exercise: Schaeffer et al.'s third factor is *residual error*, of
    which label noise is one source. With clean labels the random-ReLU-features model still
    cannot represent the tanh teacher exactly, so the min-norm fit still peaks at p = n (at
    least 10x its final test MSE for each of 8 feature draws); label noise raises the peak's
    test MSE (sigma = 1 vs 0, every draw). The peak-to-final *ratio* is not monotone in the
    noise -- noise raises the final error too -- so the page and exercise compare absolute
    peak heights. n = 60 as in the exercise."""
    ps = np.unique(np.r_[np.arange(5, 241, 5), 60])
    sweeps = {
        sigma: sweep_features(
            teacher_data(n=60, d=8, noise=sigma, n_test=1000, seed=0), ps, seeds=range(8)
        )["test_mse"][0]
        for sigma in (0.0, 1.0)
    }
    for test in sweeps.values():
        assert np.all(ps[np.argmax(test, axis=1)] == 60)
    clean, noisy = sweeps[0.0], sweeps[1.0]
    assert np.all(clean.max(axis=1) > 10 * clean[:, -1])  # a peak without label noise
    assert np.all(noisy.max(axis=1) > 5 * clean.max(axis=1))  # noise makes it taller
