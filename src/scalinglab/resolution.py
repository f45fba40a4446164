r"""Resolution-limited scaling: why the loss falls as :math:`n^{-4/d}` (chapter 5).

**Spacing.** Scatter :math:`n` points uniformly over a :math:`d`-dimensional manifold of
volume :math:`V`. Each point owns a cell of volume :math:`V/n`, so the typical distance
between neighbours is :math:`s \sim (V/n)^{1/d}`. Exactly: the distance :math:`r_1` to
the nearest other point satisfies :math:`P(r_1 > r) \approx \exp(-\rho V_d r^d)` with
:math:`\rho = n/V` and :math:`V_d` the volume of the unit :math:`d`-ball, hence

.. math:: \mathbb E\, r_1 \approx \Gamma(1 + 1/d)\,(\rho V_d)^{-1/d} \;\propto\; n^{-1/d}.

:func:`nn_spacing` measures the mean of :math:`r_1` and :func:`loglog_slope` fits the
exponent (:math:`-1/d`).

**From spacing to loss.** A model that predicts a smooth target :math:`f` at a test point
:math:`x` from training points within distance :math:`\sim s` of it errs by

* :math:`O(s)` if it copies the value of the nearest training point (1-NN regression,
  :func:`one_nn_predict`): :math:`f(x) - f(x_i) = \nabla f \cdot (x - x_i) + O(s^2)`, so
  the squared error scales as :math:`s^2 \propto n^{-2/d}`;
* :math:`O(s^2)` if it interpolates linearly between the vertices :math:`x_i` of the
  simplex that contains :math:`x` (:func:`periodic_linear_interpolate`), with barycentric
  weights :math:`\lambda_i`: the linear interpolant is exact for affine functions, so the
  first error term is the Hessian one,
  :math:`f(x) - \sum_i \lambda_i f(x_i) = -\tfrac12 \sum_i \lambda_i (x_i - x)^\top
  \nabla^2 f\, (x_i - x) + O(s^3)`, and the squared error scales as
  :math:`s^4 \propto n^{-4/d}`. :func:`one_nn_mse_prediction` gives the 1-NN error with its
  prefactor, no constant fitted.

These are the exponents of :func:`predicted_exponent`; :func:`dimension_from_slope`
inverts them. Sharma & Kaplan (2020) state the :math:`4/d` law for the number of
parameters :math:`N` of a network that resolves the manifold piece by piece; Bahri et al.
(2021) call the corresponding data regime *resolution-limited* and derive
:math:`L \propto D^{-c/d}` for the data set size :math:`D`.

**The torus.** :func:`scalinglab.data.manifolds.sample_torus` embeds the flat torus
:math:`T^d = [0, 2\pi)^d` (periodic) in :math:`\mathbb R^{2d}` as
:math:`(\cos\theta_1, \sin\theta_1, \dots)`. :func:`torus_angles` recovers
:math:`\theta`. Piecewise-linear interpolation needs a triangulation of the *periodic*
square; we triangulate the training points together with their periodic images that fall
within a margin around :math:`[0, 2\pi)^d` (:func:`periodic_images`), so that a test
point near an edge lies inside a simplex whose vertices are real neighbours on the torus,
not in a huge sliver reaching across the square (or outside the convex hull altogether).

Sources: U. Sharma and J. Kaplan, "A Neural Scaling Law from the Dimension of the Data
Manifold", arXiv:2004.10802 (2020), JMLR 23(9):1-34 (2022); Y. Bahri, E. Dyer, J. Kaplan,
J. Lee and U. Sharma, "Explaining Neural Scaling Laws", arXiv:2102.06701 (2021), PNAS
121, e2311878121 (2024).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import cKDTree
from scipy.special import gamma
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "nn_distances",
    "nn_spacing",
    "expected_nn_spacing",
    "loglog_slope",
    "predicted_exponent",
    "dimension_from_slope",
    "torus_angles",
    "periodic_images",
    "one_nn_predict",
    "periodic_linear_interpolate",
    "mse",
    "twonn_on_torus",
    "torus_teacher_grad_sq",
    "one_nn_mse_prediction",
    "spacing_curve",
    "regression_curve",
    "MLP_SWEEP_DIMS",
    "mlp_sweep_name",
    "mlp_curve",
    "slope_seed_records",
    "seed_slopes",
    "main",
]

TWO_PI = 2.0 * np.pi

#: The exponent of the squared error in ``n^(-c/d)``: copy the nearest value (error O(s))
#: or interpolate linearly (error O(s^2)); ``"spacing"`` is the distance itself.
EXPONENT_NUMERATOR = {"spacing": 1.0, "1nn": 2.0, "linear": 4.0}


def _as_2d(name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name} must have shape (n, D) with n >= 1, got {x.shape}")
    return x


def nn_distances(x, period: float | None = None) -> np.ndarray:
    """Distance from every point of ``x`` (shape ``(n, D)``) to its nearest *other* point.

    The point itself (distance 0) is excluded: we ask for two neighbours and keep the
    second. Exact search with :class:`sklearn.neighbors.NearestNeighbors`; with
    ``period`` the coordinates are periodic (e.g. torus angles, ``period = 2 pi``) and
    the search is :class:`scipy.spatial.cKDTree` with ``boxsize=period`` (the geodesic
    distance on the flat torus).
    """
    x = _as_2d("x", x)
    if len(x) < 2:
        raise ValueError("need at least two points")
    if period is not None:
        x = np.mod(x, period)
        dist, _ = cKDTree(x, boxsize=period).query(x, k=2)
        return dist[:, 1]
    dist, _ = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)
    return dist[:, 1]


def nn_spacing(x, period: float | None = None) -> float:
    r"""Mean nearest-neighbour distance :math:`\bar r_1` of the points ``x``
    (``period``: see :func:`nn_distances`)."""
    return float(nn_distances(x, period).mean())


def expected_nn_spacing(n: int, d: int, volume: float) -> float:
    r"""Poisson-limit mean nearest-neighbour distance of ``n`` uniform points on a flat
    :math:`d`-manifold of volume ``volume``:
    :math:`\Gamma(1+1/d)\,\big(\tfrac{n-1}{V} V_d\big)^{-1/d}`, :math:`V_d =
    \pi^{d/2}/\Gamma(d/2+1)`. (``n - 1`` other points; exact as :math:`n \to \infty`.)"""
    v_d = np.pi ** (d / 2) / gamma(d / 2 + 1)
    return float(gamma(1 + 1 / d) * ((n - 1) / volume * v_d) ** (-1 / d))


def loglog_slope(n, y) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log n` (the exponent of
    :math:`y \propto n^{\text{slope}}`). Fitting :math:`y` itself against :math:`\log n`
    would weigh the largest values (smallest ``n``) almost exclusively."""
    n = np.asarray(n, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if n.shape != y.shape or n.ndim != 1 or len(n) < 2:
        raise ValueError("n and y must be 1-D of the same length >= 2")
    if np.any(n <= 0) or np.any(y <= 0):
        raise ValueError("n and y must be positive")
    return float(np.polyfit(np.log(n), np.log(y), 1)[0])


def predicted_exponent(d: float, kind: str = "linear") -> float:
    """The predicted slope ``-c/d`` of ``log(quantity)`` against ``log n``.

    ``kind``: ``"spacing"`` (c = 1, the nearest-neighbour distance), ``"1nn"`` (c = 2, the
    MSE of 1-NN regression) or ``"linear"`` (c = 4, the MSE of piecewise-linear
    interpolation, and the resolution-limited loss of Sharma & Kaplan)."""
    if kind not in EXPONENT_NUMERATOR:
        raise ValueError(f"kind must be one of {sorted(EXPONENT_NUMERATOR)}, got {kind!r}")
    if d <= 0:
        raise ValueError(f"d must be > 0, got {d}")
    return -EXPONENT_NUMERATOR[kind] / d


def dimension_from_slope(slope: float, kind: str = "linear") -> float:
    """Invert :func:`predicted_exponent`: the ``d`` for which ``-c/d`` equals ``slope``."""
    if kind not in EXPONENT_NUMERATOR:
        raise ValueError(f"kind must be one of {sorted(EXPONENT_NUMERATOR)}, got {kind!r}")
    if slope >= 0:
        raise ValueError(f"a falling power law has a negative slope, got {slope}")
    return -EXPONENT_NUMERATOR[kind] / slope


def torus_angles(x) -> np.ndarray:
    r"""Angles :math:`\theta \in [0, 2\pi)^d` of points embedded as
    :math:`(\cos\theta_1, \sin\theta_1, \dots, \cos\theta_d, \sin\theta_d)` (any radius)."""
    x = _as_2d("x", x)
    if x.shape[1] % 2:
        raise ValueError(f"a torus embedding has an even number of columns, got {x.shape[1]}")
    return np.mod(np.arctan2(x[:, 1::2], x[:, 0::2]), TWO_PI)


def periodic_images(theta, values, margin: float, period: float = TWO_PI):
    r"""Points of :math:`[0, P)^d` plus their periodic images within ``margin`` of the box.

    Returns ``(theta_padded, values_padded)``: every shift :math:`k \in \{-1,0,1\}^d` of
    every point, :math:`\theta + kP`, that lands in :math:`[-m, P + m)^d`. The originals
    come first. ``margin`` must be less than the period.
    """
    theta = _as_2d("theta", theta)
    values = np.asarray(values, dtype=np.float64)
    if not 0 <= margin < period:
        raise ValueError(f"need 0 <= margin < period, got {margin}")
    d = theta.shape[1]
    pts, vals = [theta], [values]
    for shift in itertools.product((-1, 0, 1), repeat=d):
        if not any(shift):
            continue
        moved = theta + period * np.asarray(shift, dtype=np.float64)
        keep = np.all((moved >= -margin) & (moved < period + margin), axis=1)
        pts.append(moved[keep])
        vals.append(values[keep])
    return np.concatenate(pts), np.concatenate(vals)


def one_nn_predict(x_train, y_train, x_test) -> np.ndarray:
    """1-nearest-neighbour regression: each test point gets the target of its nearest
    training point (Euclidean distance in the coordinates given)."""
    x_train = _as_2d("x_train", x_train)
    x_test = _as_2d("x_test", x_test)
    y_train = np.asarray(y_train, dtype=np.float64)
    _, idx = NearestNeighbors(n_neighbors=1).fit(x_train).kneighbors(x_test)
    return y_train[idx[:, 0]]


def periodic_linear_interpolate(
    theta_train, y_train, theta_test, margin: float | None = None, period: float = TWO_PI
) -> np.ndarray:
    r"""Piecewise-linear (Delaunay) interpolation of ``y_train`` on the periodic box
    :math:`[0, P)^d`, evaluated at ``theta_test``.

    The training points are padded with their periodic images within ``margin`` of the
    box (:func:`periodic_images`) and triangulated by Qhull through
    :class:`scipy.interpolate.LinearNDInterpolator`; the value at a test point is the
    barycentric average of the vertices of the simplex containing it. The default margin
    is two cell sides for :math:`d \le 3` and one for :math:`d \ge 4`, a cell side being
    :math:`P n^{-1/d}` (the side of the cube each point owns). Measured on the teacher data
    (``tests/test_resolution.py``): at :math:`d = 2`, :math:`n = 500` one cell side leaves
    a sliver at the edge that raises the test MSE by a third, two and four give identical
    results; at :math:`d = 4` one and two agree within 1 %, and two would cost 2.5 times
    as much (the padded set has :math:`(1 + 2c\,n^{-1/d})^d\, n` points for margin
    :math:`c` cells). If a test point still falls outside the padded hull (an empty gap
    wider than the margin, likely for small ``n``), the
    margin is doubled and the triangulation redone, up to half the period; test points
    are never silently dropped.
    """
    theta_train = _as_2d("theta_train", theta_train)
    theta_test = np.mod(_as_2d("theta_test", theta_test), period)
    y_train = np.asarray(y_train, dtype=np.float64)
    n, d = theta_train.shape
    if margin is None:
        margin = (2.0 if d <= 3 else 1.0) * period * n ** (-1.0 / d)
    margin = min(margin, 0.5 * period)
    while True:
        pts, vals = periodic_images(theta_train, y_train, margin, period)
        if d == 1:  # Qhull needs d >= 2; in 1-D the simplices are the intervals
            order = np.argsort(pts[:, 0])
            pred = np.interp(
                theta_test[:, 0], pts[order, 0], vals[order], left=np.nan, right=np.nan
            )
        else:
            pred = LinearNDInterpolator(pts, vals)(theta_test)
        if not np.any(np.isnan(pred)):
            return pred
        if margin >= 0.5 * period:
            raise RuntimeError("a test point fell outside the padded triangulation")
        margin = min(2 * margin, 0.5 * period)  # a gap wider than the margin: pad more


def mse(pred, y) -> float:
    """Mean squared error (averaged over every entry)."""
    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean((pred.reshape(y.shape) - y) ** 2))


def twonn_on_torus(theta, period: float = TWO_PI, discard_fraction: float = 0.1) -> float:
    r"""TwoNN (Facco et al. 2017) with distances measured *along* the flat torus (periodic
    angles ``theta``) instead of straight chords through the embedding: the ratios
    :math:`\mu = r_2/r_1` come from :class:`scipy.spatial.cKDTree` with ``boxsize=period``,
    and the fit is :func:`scalinglab.intrinsic_dimension.twonn_fit`'s linear one (slope
    through the origin of :math:`-\log(1 - i/N)` against :math:`\log\mu_{(i)}`, the
    largest ``discard_fraction`` of the ratios left out)."""
    theta = np.mod(_as_2d("theta", theta), period)
    dist, _ = cKDTree(theta, boxsize=period).query(theta, k=3)
    mu = np.sort(dist[:, 2] / dist[:, 1])
    n = len(mu)
    n_keep = min(int(n * (1.0 - discard_fraction)), n - 1)
    log_mu = np.log(mu[:n_keep])
    y = -np.log1p(-np.arange(1, n_keep + 1) / n)
    return float(log_mu @ y / (log_mu @ log_mu))


def torus_teacher_grad_sq(d: int, n_points: int = 20000, seed: int = 0, h: float = 1e-4) -> float:
    r""":math:`\mathbb E_\theta |\nabla_\theta f|^2` of the standardised teacher of
    :func:`scalinglab.data.teacher_student.teacher_student_dataset` (seed ``seed``) on the
    flat torus :math:`T^d`, the gradient taken along the torus (in the angles, the metric
    the unit-radius embedding induces). Central differences of step ``h`` (error
    :math:`O(h^2)`, far below the Monte-Carlo error) averaged over ``n_points`` uniform
    angles from their own stream."""
    from scalinglab.data.teacher_student import standardised_teacher

    target = standardised_teacher(d, "torus", seed=seed)
    theta = np.random.default_rng([seed, d, 99]).uniform(0, TWO_PI, size=(n_points, d))

    def embed(t):
        out = np.empty((len(t), 2 * d))
        out[:, 0::2], out[:, 1::2] = np.cos(t), np.sin(t)
        return out

    grad_sq = np.zeros(n_points)
    for k in range(d):
        step = np.zeros(d)
        step[k] = h
        diff = (target(embed(theta + step)) - target(embed(theta - step)))[:, 0] / (2 * h)
        grad_sq += diff**2
    return float(grad_sq.mean())


def one_nn_mse_prediction(n, d: int, grad_sq: float, volume: float | None = None) -> np.ndarray:
    r"""The 1-NN test MSE predicted with no fitted constant, for ``n`` uniform training
    points on a flat :math:`d`-manifold of volume ``volume`` (default the torus,
    :math:`(2\pi)^d`):

    .. math:: \mathrm{MSE}_{1\mathrm{NN}} \approx \frac1d\,\mathbb E|\nabla f|^2\;
              \Gamma\!\big(1 + \tfrac2d\big)\,\Big(\frac{n V_d}{V}\Big)^{-2/d}.

    Derivation: the error at a test point is :math:`\nabla f \cdot \delta + O(s^2)`, with
    :math:`\delta` the offset to the nearest training point. Its direction is uniform and
    independent of its length, so :math:`\mathbb E (\nabla f\cdot\delta)^2 = |\nabla f|^2
    \mathbb E r^2 / d`; and :math:`P(r > \rho) = (1 - V_d\rho^d/V)^n \approx
    \exp(-n V_d \rho^d / V)` gives :math:`\mathbb E r^2 = \Gamma(1 + 2/d)(n V_d/V)^{-2/d}`.
    ``grad_sq`` is :math:`\mathbb E|\nabla f|^2` (:func:`torus_teacher_grad_sq`)."""
    n = np.asarray(n, dtype=np.float64)
    if volume is None:
        volume = TWO_PI**d
    v_d = np.pi ** (d / 2) / gamma(d / 2 + 1)
    return grad_sq / d * gamma(1 + 2 / d) * (n * v_d / volume) ** (-2 / d)


def spacing_curve(
    ns: Sequence[int], d: int, manifold: str = "torus", seed: int = 0, geodesic: bool = False
) -> np.ndarray:
    """Mean nearest-neighbour distance of ``n`` uniform points on ``manifold``
    (``"torus"``: :math:`T^d \\subset \\mathbb R^{2d}`, ``"sphere"``: :math:`S^d`) for each
    ``n`` of ``ns``, measured in the embedding (straight chords); ``geodesic=True`` (torus
    only) measures along the flat torus instead. Point sets are nested (a prefix of one
    large sample)."""
    from scalinglab.data.manifolds import sample_hypersphere, sample_torus

    if manifold not in ("torus", "sphere"):
        raise ValueError(f"manifold must be 'torus' or 'sphere', got {manifold!r}")
    if geodesic and manifold != "torus":
        raise ValueError("geodesic spacing is implemented for the torus only")
    rng = np.random.default_rng([seed, d])
    sampler = {"torus": sample_torus, "sphere": sample_hypersphere}[manifold]
    x = sampler(int(max(ns)), d, rng)
    if geodesic:
        theta = torus_angles(x)
        return np.array([nn_spacing(theta[:n], period=TWO_PI) for n in ns])
    return np.array([nn_spacing(x[:n]) for n in ns])


def regression_curve(
    ns: Sequence[int],
    d: int,
    method: str = "linear",
    n_test: int = 2000,
    seed: int = 0,
    **teacher_kwargs,
) -> np.ndarray:
    """Test MSE of 1-NN regression (``method="1nn"``, in the embedding coordinates) or
    periodic piecewise-linear interpolation (``"linear"``, in the torus angles) of the
    smooth teacher of :func:`scalinglab.data.teacher_student.teacher_student_dataset` on
    :math:`T^d`, for each training-set size of ``ns`` (nested training sets, one test set).
    """
    from scalinglab.data.teacher_student import teacher_student_dataset

    if method not in ("1nn", "linear"):
        raise ValueError(f"method must be '1nn' or 'linear', got {method!r}")
    data = teacher_student_dataset(
        n_train=int(max(ns)),
        n_test=n_test,
        intrinsic_dim=d,
        manifold="torus",
        seed=seed,
        **teacher_kwargs,
    )
    x_tr = data["x_train"].astype(np.float64)
    x_te = data["x_test"].astype(np.float64)
    y_tr, y_te = data["y_train"][:, 0], data["y_test"][:, 0]
    out = []
    for n in ns:
        if method == "1nn":
            pred = one_nn_predict(x_tr[:n], y_tr[:n], x_te)
        else:
            pred = periodic_linear_interpolate(torus_angles(x_tr[:n]), y_tr[:n], torus_angles(x_te))
        out.append(mse(pred, y_te))
    return np.array(out)


# ------------------------------------------------------------------ the shipped MLP sweeps
#: Intrinsic dimensions of the shipped MLP sweeps ``records/ch05_mlp_d{d}.jsonl``.
MLP_SWEEP_DIMS = (2, 3, 4, 6)


def mlp_sweep_name(d: int) -> str:
    """Name of the shipped sweep of ReLU MLPs on the teacher over :math:`T^d`."""
    if d not in MLP_SWEEP_DIMS:
        raise ValueError(f"shipped MLP sweeps exist for d in {MLP_SWEEP_DIMS}, got {d}")
    return f"ch05_mlp_d{d}"


def mlp_curve(records: Sequence[dict], steps: int | None = None):
    """``(ns, test_mse)`` from sweep records: the test MSE at ``steps`` (default: the last
    logged step) averaged over init seeds, for each training-set size, sorted by ``n``.

    The engine's regression records store the test MSE as ``test_loss``."""
    if steps is None:
        steps = max(r["steps"] for r in records)
    by_n: dict[int, list[float]] = {}
    for r in records:
        if r["steps"] == steps:
            by_n.setdefault(int(r["n_train"]), []).append(float(r["test_loss"]))
    if not by_n:
        raise ValueError(f"no records at steps={steps}")
    ns = np.array(sorted(by_n))
    return ns, np.array([np.mean(by_n[n]) for n in ns])


# ------------------------------------------------------------ the slopes' spread over seeds
def slope_seed_records(config: dict) -> list[dict]:
    """Fitted log-log slopes of 1-NN and piecewise-linear test MSE over several random
    samples (``seed``: teacher, training and test points), for the chapter's table of
    mean +- s.d. ``config``: ``{"seeds": [...], "ns": [...], "dims_1nn": [...],
    "ns_linear": {"d": [...]}}`` (see ``records/ch05_slope_seeds.config.json``)."""
    records = []
    for seed in config["seeds"]:
        for d in config["dims_1nn"]:
            ns = config["ns"]
            slope = loglog_slope(ns, regression_curve(ns, d, "1nn", seed=seed))
            records.append({"method": "1nn", "d": d, "seed": seed, "slope": slope})
        for d, ns in config["ns_linear"].items():
            slope = loglog_slope(ns, regression_curve(ns, int(d), "linear", seed=seed))
            records.append({"method": "linear", "d": int(d), "seed": seed, "slope": slope})
    return records


def seed_slopes(records: Sequence[dict], method: str, d: int) -> np.ndarray:
    """The slopes of ``method`` at dimension ``d`` in :func:`slope_seed_records`' records,
    in seed order."""
    rows = sorted((r["seed"], r["slope"]) for r in records if r["method"] == method and r["d"] == d)
    if not rows:
        raise ValueError(f"no {method} slopes at d = {d}")
    return np.array([slope for _, slope in rows])


def main(argv=None) -> None:
    """``python -m scalinglab.resolution CONFIG.json --out records.jsonl``: the slopes of
    1-NN and interpolation over several seeds (BLAS at 1 thread)."""
    from threadpoolctl import threadpool_limits

    from scalinglab.sweep_cli import records_main

    with threadpool_limits(1):
        records_main(slope_seed_records, main.__doc__, argv)


if __name__ == "__main__":
    main()
