r"""Random-features regression: the cleanest place to watch double descent happen.

A random-features model fixes a random first layer and learns only the last one:

.. math::

    \phi(x) = \sigma\!\left(W x / \sqrt{d}\right) \in \mathbb{R}^p, \qquad
    \hat f(x) = \phi(x)^\top \beta, \qquad W_{jk} \sim \mathcal{N}(0, 1),

with :math:`\sigma` a ReLU or a cosine (random Fourier features, with a random phase).
Stacking the :math:`n` training inputs gives the feature matrix
:math:`\Phi \in \mathbb{R}^{n \times p}` and a linear least-squares problem in
:math:`\beta`.

*Ridgeless (minimum-norm) fit.* For :math:`p < n` the least-squares solution is unique;
for :math:`p \ge n` infinitely many :math:`\beta` interpolate the data and we take the one
of smallest Euclidean norm. Both cases are the Moore--Penrose pseudo-inverse,
:math:`\hat\beta = \Phi^{+} y`. With the thin SVD :math:`\Phi = U S V^\top`,

.. math::

    \hat\beta = \sum_{i:\, s_i > 0} \frac{u_i^\top y}{s_i}\, v_i .

Every component of the targets -- noise included -- is divided by a singular value.
At :math:`p = n` the square random matrix :math:`\Phi` has singular values arbitrarily
close to zero (the lower Marchenko--Pastur edge :math:`(1-\sqrt{\gamma})^2` of
:math:`\Phi^\top\Phi / n` touches zero at :math:`\gamma = p/n = 1`), so the *residual
error* -- label noise, or the part of the target the features cannot represent -- is
amplified without bound wherever test points project onto those directions: this is the
peak of double descent (Schaeffer et al. 2023's three factors: small non-zero singular
values, test features along them, residual error). Label noise makes the peak taller but
is not needed for one when the model class is misspecified.

*Ridge fit.* :math:`\hat\beta_\lambda = \arg\min \|y - \Phi\beta\|^2 + \lambda\|\beta\|^2
= \sum_i \frac{s_i}{s_i^2 + \lambda} (u_i^\top y)\, v_i` replaces :math:`1/s_i` by
:math:`s_i/(s_i^2+\lambda) \le 1/(2\sqrt{\lambda})`, which caps the amplification and
removes the peak (the same convention as scikit-learn's ``Ridge(alpha=lam,
fit_intercept=False)``).

*Theory for the isotropic linear model* (Hastie, Montanari, Rosset & Tibshirani 2022,
Theorem 1): with :math:`x \sim \mathcal{N}(0, I_p)`, :math:`y = x^\top\beta + \varepsilon`,
:math:`\|\beta\| = r`, :math:`\operatorname{Var}\varepsilon = \sigma^2` and
:math:`p/n \to \gamma`, the excess test risk of the min-norm estimator is

.. math::

    R(\gamma) = \begin{cases} \sigma^2 \dfrac{\gamma}{1-\gamma}, & \gamma < 1,\\[1ex]
    r^2\left(1 - \dfrac{1}{\gamma}\right) + \dfrac{\sigma^2}{\gamma - 1}, & \gamma > 1.
    \end{cases}

Everything here is NumPy and runs in milliseconds for the sizes used in the course.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = [
    "RandomFeatures",
    "isotropic_linear_data",
    "marchenko_pastur_edges",
    "min_norm_fit",
    "mse",
    "noise_amplification",
    "ridge_fit",
    "ridgeless_risk_isotropic",
    "singular_values",
    "sweep_features",
    "sweep_samples_isotropic",
    "teacher_data",
]


@dataclass(frozen=True)
class RandomFeatures:
    r"""A fixed random first layer: :math:`x \mapsto \max(0, W x / \sqrt{d})` (``"relu"``, no
    bias) or :math:`x \mapsto \sqrt{2} \cos(W x / \sqrt{d} + b)` with random phases :math:`b`
    (``"cos"``).

    Features are *nested*: the model with ``p`` features uses the first ``p`` rows of one
    weight matrix drawn for ``max_features``. Sweeping ``p`` then adds features one at a
    time instead of redrawing them, which removes a source of noise from the curves.
    """

    weights: np.ndarray  # (max_features, d)
    phases: np.ndarray  # (max_features,), used by the cosine features only
    kind: str = "relu"

    @classmethod
    def draw(cls, d: int, max_features: int, kind: str = "relu", seed: int = 0) -> RandomFeatures:
        """Draw Gaussian weights (and uniform phases for ``kind="cos"``) from ``seed``."""
        if kind not in ("relu", "cos"):
            raise ValueError(f"kind must be 'relu' or 'cos', got {kind!r}")
        rng = np.random.default_rng(seed)
        weights = rng.standard_normal((max_features, d))
        phases = rng.uniform(0.0, 2.0 * np.pi, size=max_features)
        return cls(weights=weights, phases=phases, kind=kind)

    @property
    def max_features(self) -> int:
        return self.weights.shape[0]

    def __call__(self, x: np.ndarray, p: int | None = None) -> np.ndarray:
        """Feature matrix :math:`\\Phi` of shape ``(n, p)`` for inputs ``x`` of shape ``(n, d)``.

        The :math:`1/\\sqrt{d}` keeps pre-activations of order one for inputs with
        entries of order one, whatever the input dimension.
        """
        p = self.max_features if p is None else int(p)
        if not 1 <= p <= self.max_features:
            raise ValueError(f"p must be in [1, {self.max_features}], got {p}")
        x = np.asarray(x, dtype=np.float64)
        pre = x @ self.weights[:p].T / np.sqrt(x.shape[1])
        if self.kind == "relu":
            return np.maximum(pre, 0.0)
        # sqrt(2) cos(w.x + b) has E[phi(x) phi(x')] equal to a Gaussian kernel (Rahimi & Recht).
        return np.sqrt(2.0) * np.cos(pre + self.phases[:p])


def min_norm_fit(phi: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Minimum-norm least-squares coefficients :math:`\hat\beta = \Phi^{+} y`.

    Uses LAPACK's SVD-based ``gelsd`` (``numpy.linalg.lstsq``), which returns the
    minimum-norm solution in both regimes without forming :math:`\Phi^\top\Phi` (whose
    condition number is the square of :math:`\Phi`'s -- fatal near :math:`p = n`).
    """
    beta, *_ = np.linalg.lstsq(np.asarray(phi, float), np.asarray(y, float), rcond=None)
    return beta


def ridge_fit(phi: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    r"""Ridge coefficients :math:`\arg\min_\beta \|y - \Phi\beta\|^2 + \lambda\|\beta\|^2`.

    Solved in whichever space is smaller: the primal
    :math:`(\Phi^\top\Phi + \lambda I_p)^{-1}\Phi^\top y` when :math:`p \le n`, the dual
    :math:`\Phi^\top(\Phi\Phi^\top + \lambda I_n)^{-1} y` when :math:`p > n` (the two are
    equal by the push-through identity). ``lam = 0`` falls back to :func:`min_norm_fit`.
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    phi = np.asarray(phi, float)
    y = np.asarray(y, float)
    if lam == 0:
        return min_norm_fit(phi, y)
    n, p = phi.shape
    if p <= n:
        return np.linalg.solve(phi.T @ phi + lam * np.eye(p), phi.T @ y)
    return phi.T @ np.linalg.solve(phi @ phi.T + lam * np.eye(n), y)


def mse(y_pred: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error, averaged over every entry."""
    return float(np.mean((np.asarray(y_pred) - np.asarray(y)) ** 2))


def singular_values(phi: np.ndarray) -> np.ndarray:
    """Singular values of ``phi`` in decreasing order."""
    return np.linalg.svd(np.asarray(phi, float), compute_uv=False)


def noise_amplification(phi: np.ndarray, rtol: float | None = None) -> float:
    r"""Variance factor :math:`\operatorname{tr}\,(\Phi^\top\Phi)^{+} = \sum_i 1/s_i^2`.

    For white noise of variance :math:`\sigma^2` added to the targets, the min-norm
    coefficients move by a random vector of expected squared norm
    :math:`\sigma^2 \sum_i 1/s_i^2`: the smallest singular values dominate. Singular values
    below ``rtol * s_max`` (default: machine epsilon times the larger dimension, as in
    ``lstsq``) count as zero, as the pseudo-inverse does.
    """
    s = singular_values(phi)
    if rtol is None:
        rtol = np.finfo(float).eps * max(np.shape(phi))
    s = s[s > rtol * s[0]]
    return float(np.sum(1.0 / s**2))


def marchenko_pastur_edges(gamma: float) -> tuple[float, float]:
    r"""Edges :math:`(1 \mp \sqrt{\gamma})^2` of the Marchenko--Pastur law.

    They are the limits of the smallest non-zero and the largest eigenvalue of
    :math:`X^\top X / n` for an :math:`n \times p` matrix of i.i.d. standard Gaussians with
    :math:`p/n \to \gamma`; so the extreme singular values of :math:`X/\sqrt{n}` tend to
    :math:`|1 \mp \sqrt{\gamma}|`. The lower edge vanishes exactly at :math:`\gamma = 1`.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    root = np.sqrt(gamma)
    return float((1.0 - root) ** 2), float((1.0 + root) ** 2)


def ridgeless_risk_isotropic(gamma, sigma: float, r: float) -> np.ndarray:
    r"""Asymptotic excess risk of min-norm least squares, isotropic features.

    Hastie, Montanari, Rosset & Tibshirani (2022), Theorem 1 (see the module docstring):
    :math:`\sigma^2\gamma/(1-\gamma)` below the threshold and
    :math:`r^2(1-1/\gamma) + \sigma^2/(\gamma-1)` above it; infinite at :math:`\gamma = 1`.
    The test MSE on fresh noisy targets is this plus :math:`\sigma^2`.
    """
    gamma = np.asarray(gamma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        under = sigma**2 * gamma / (1.0 - gamma)
        over = r**2 * (1.0 - 1.0 / gamma) + sigma**2 / (gamma - 1.0)
    risk = np.where(gamma < 1.0, under, over)
    return np.where(gamma == 1.0, np.inf, risk)


def isotropic_linear_data(
    n: int, p: int, sigma: float, r: float, n_test: int = 2000, seed: int = 0
) -> dict[str, np.ndarray]:
    r"""The well-specified isotropic model of Hastie et al.: :math:`y = x^\top\beta + \varepsilon`.

    :math:`x \sim \mathcal{N}(0, I_p)`, :math:`\beta` uniform on the sphere of radius
    ``r``, :math:`\varepsilon \sim \mathcal{N}(0, \sigma^2)`. Returns ``x_train, y_train,
    x_test, y_test`` and ``beta``; the test targets are noiseless, so the test MSE of an
    estimate is directly its excess risk (plus Monte Carlo error).
    """
    rng = np.random.default_rng(seed)
    beta = rng.standard_normal(p)
    beta *= r / np.linalg.norm(beta)
    x_train = rng.standard_normal((n, p))
    x_test = rng.standard_normal((n_test, p))
    y_train = x_train @ beta + sigma * rng.standard_normal(n)
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=x_test @ beta, beta=beta)


def teacher_data(
    n: int, d: int, noise: float = 0.3, n_test: int = 2000, seed: int = 0
) -> dict[str, np.ndarray]:
    r"""A smooth nonlinear regression task for random features.

    Inputs :math:`x \sim \mathcal{N}(0, I_d)`; target
    :math:`f^*(x) = \langle a, x\rangle/\sqrt{d} + \tanh(\langle b, x\rangle/\sqrt{d})`
    with fixed random directions, plus Gaussian label noise of standard deviation
    ``noise`` on the *training* targets only (test targets are clean).
    """
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(d), rng.standard_normal(d)

    def f(x: np.ndarray) -> np.ndarray:
        return x @ a / np.sqrt(d) + np.tanh(x @ b / np.sqrt(d))

    x_train = rng.standard_normal((n, d))
    x_test = rng.standard_normal((n_test, d))
    y_train = f(x_train) + noise * rng.standard_normal(n)
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=f(x_test))


def sweep_features(
    data: dict[str, np.ndarray],
    ps: Sequence[int],
    lams: Sequence[float] = (0.0,),
    kind: str = "relu",
    seeds: Sequence[int] = (0,),
) -> dict[str, np.ndarray]:
    r"""Train and test MSE of random-features regression for every number of features.

    For each seed one nested :class:`RandomFeatures` layer is drawn; for every ``p`` in
    ``ps`` the training feature matrix is decomposed once, :math:`\Phi = U S V^\top`, and
    every ridge strength in ``lams`` is read off the same SVD,
    :math:`\hat\beta_\lambda = V\,\mathrm{diag}(s_i/(s_i^2+\lambda))\,U^\top y`
    (``lam = 0``: :math:`1/s_i` on the non-zero singular values, the min-norm fit).
    This is the same estimator as :func:`ridge_fit`, computed once per ``p``.

    Returns ``train_mse``, ``test_mse`` and ``beta_norm`` of shape
    ``(len(lams), len(seeds), len(ps))``; ``min_sv`` (smallest singular value of the
    training feature matrix over :math:`\sqrt{n}`) of shape ``(len(seeds), len(ps))``;
    and ``p``, ``lams``, ``n``.
    """
    ps = np.asarray(ps, dtype=int)
    lams = np.asarray(lams, dtype=float)
    if np.any(lams < 0):
        raise ValueError("every ridge strength must be >= 0")
    x_tr, y_tr, x_te, y_te = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    n = len(y_tr)
    shape = (len(lams), len(seeds), len(ps))
    out = {k: np.empty(shape) for k in ("train_mse", "test_mse", "beta_norm")}
    out["min_sv"] = np.empty(shape[1:])
    # The matrices are small: one BLAS thread is faster than several fighting for 2 cores.
    with threadpool_limits(limits=1):
        _fill_sweep(out, x_tr, y_tr, x_te, y_te, ps, lams, kind, seeds)
    out.update(p=ps, lams=lams, n=np.asarray(n))
    return out


def _fill_sweep(out, x_tr, y_tr, x_te, y_te, ps, lams, kind, seeds) -> None:
    """Inner loop of :func:`sweep_features` (writes into ``out``)."""
    n = len(y_tr)
    for i, seed in enumerate(seeds):
        rf = RandomFeatures.draw(x_tr.shape[1], int(ps.max()), kind=kind, seed=seed)
        phi_tr_all, phi_te_all = rf(x_tr), rf(x_te)
        for j, p in enumerate(ps):
            phi_tr, phi_te = phi_tr_all[:, :p], phi_te_all[:, :p]
            u, s, vt = np.linalg.svd(phi_tr, full_matrices=False)
            out["min_sv"][i, j] = s[-1] / np.sqrt(n)
            uty = u.T @ y_tr
            keep = s > np.finfo(float).eps * max(n, p) * s[0]  # lstsq's cut-off
            for k, lam in enumerate(lams):
                gain = np.zeros_like(s)
                gain[keep] = s[keep] / (s[keep] ** 2 + lam)
                beta = vt.T @ (gain * uty)
                out["train_mse"][k, i, j] = mse(phi_tr @ beta, y_tr)
                out["test_mse"][k, i, j] = mse(phi_te @ beta, y_te)
                out["beta_norm"][k, i, j] = np.linalg.norm(beta)


def sweep_samples_isotropic(
    ns: Sequence[int], p: int, sigma: float, r: float, seeds: Sequence[int] = (0,)
) -> np.ndarray:
    """Sample-wise double descent: test excess risk of min-norm regression vs ``n``.

    Fixed dimension ``p`` of the isotropic linear model, growing training sets; returns an
    array ``(len(seeds), len(ns))``. Around ``n = p`` *more data hurts*:
    :func:`ridgeless_risk_isotropic` at :math:`\\gamma = p/n` is the limit.
    """
    risk = np.empty((len(seeds), len(ns)))
    with threadpool_limits(limits=1):  # small matrices: threads only add contention
        for i, seed in enumerate(seeds):
            for j, n in enumerate(ns):
                data = isotropic_linear_data(n, p, sigma, r, n_test=1, seed=1000 * seed + j)
                beta = min_norm_fit(data["x_train"], data["y_train"])
                # Excess risk in closed form: E[(x.(beta_hat - beta))^2] = ||beta_hat - beta||^2.
                risk[i, j] = float(np.sum((beta - data["beta"]) ** 2))
    return risk
