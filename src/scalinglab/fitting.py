"""Power laws and neural scaling-law fits (chapter 4).

Two laws, one fitting method.

**A power law with an irreducible term** in one variable :math:`x` (parameters, data,
compute):

.. math:: L(x) = E + A\\,x^{-\\alpha}.

Without :math:`E` it is a straight line on log-log axes,
:math:`\\log L = \\log A - \\alpha \\log x`. With :math:`E > 0` the line bends and flattens
towards the floor :math:`E` (a fitted constant; for a language model it should correspond to
the entropy of the data given the model's context, but it is an extrapolation).

**The Chinchilla law** (Hoffmann et al. 2022, eq. 2) in parameters :math:`N` and
training tokens :math:`D`:

.. math:: L(N, D) = E + \\frac{A}{N^{\\alpha}} + \\frac{B}{D^{\\beta}}.

**The fit** follows Hoffmann et al. (2022, section 3.3 and appendix D.2). Write
:math:`a = \\log A`, :math:`b = \\log B`, :math:`e = \\log E` so that every term is
positive and the model is a log-sum-exp of terms linear in the parameters,

.. math:: \\log \\hat L_i = \\operatorname{LSE}(a - \\alpha \\log N_i,\\; b - \\beta \\log D_i,\\; e),

and minimise the Huber loss of the log-space residuals
:math:`r_i = \\log \\hat L_i - \\log L_i`,

.. math:: \\min_{a,b,e,\\alpha,\\beta} \\sum_i \\operatorname{Huber}_{\\delta}(r_i), \\qquad
          \\operatorname{Huber}_{\\delta}(r) =
          \\begin{cases} r^2/2 & |r| \\le \\delta \\\\ \\delta(|r| - \\delta/2) & |r| > \\delta
          \\end{cases}

with :math:`\\delta = 10^{-3}`, by L-BFGS from several starting points. Working in log
space weighs a 1 % error the same at every loss level; Huber makes the fit robust to
outlying runs. The objective is not convex, so one start is not enough; Hoffmann et al.
used a grid of 4500 starts. :func:`chinchilla_starts` builds a small *data-adapted* set
of starts (27 by default) that reaches the same optimum as that grid (checked in
``tests/test_fitting.py``) at a fraction of the cost.

**Compute-optimal allocation.** With training compute :math:`C \\approx 6ND` FLOPs
(Kaplan et al. 2020, section 2.1), minimising :math:`L(N, C/(6N))` over :math:`N` gives
(Hoffmann et al. 2022, eq. 4 and appendix D.2)

.. math:: N_{\\rm opt}(C) = G\\,(C/6)^{a}, \\quad D_{\\rm opt}(C) = G^{-1}(C/6)^{b}, \\quad
          G = \\Big(\\frac{\\alpha A}{\\beta B}\\Big)^{1/(\\alpha+\\beta)},\\;
          a = \\frac{\\beta}{\\alpha+\\beta},\\; b = \\frac{\\alpha}{\\alpha+\\beta}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

__all__ = [
    "HUBER_DELTA",
    "PowerLawFit",
    "ChinchillaFit",
    "Frontier",
    "huber",
    "power_law",
    "chinchilla_loss",
    "fit_power_law",
    "fit_loglog_line",
    "fit_chinchilla",
    "chinchilla_starts",
    "hoffmann_grid",
    "power_law_starts",
    "to_starts",
    "compute_optimal",
    "compute_frontier",
    "bootstrap",
    "isoflop_profiles",
    "parabola_minimum",
    "log_reducible_error",
]

#: Huber threshold of Hoffmann et al. (2022), appendix D.2.
HUBER_DELTA = 1e-3


# --------------------------------------------------------------------------- the laws
def power_law(x, E: float, A: float, alpha: float) -> np.ndarray:
    """:math:`L(x) = E + A x^{-\\alpha}`."""
    return E + A * np.asarray(x, dtype=np.float64) ** (-alpha)


def chinchilla_loss(N, D, E: float, A: float, B: float, alpha: float, beta: float) -> np.ndarray:
    """:math:`L(N, D) = E + A N^{-\\alpha} + B D^{-\\beta}` (Hoffmann et al. 2022, eq. 2)."""
    N = np.asarray(N, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    return E + A * N ** (-alpha) + B * D ** (-beta)


def huber(r, delta: float = HUBER_DELTA) -> np.ndarray:
    """Huber loss: quadratic for :math:`|r| \\le \\delta`, linear beyond (same as
    :func:`torch.nn.functional.huber_loss` with ``reduction='none'``)."""
    a = np.abs(np.asarray(r, dtype=np.float64))
    return np.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta))


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law` / :func:`fit_loglog_line`:
    :math:`L(x) = E + A x^{-\\alpha}` (``E = 0`` for a pure power law)."""

    E: float
    A: float
    alpha: float
    objective: float = float("nan")
    method: str = "huber-lse"

    def __call__(self, x) -> np.ndarray:
        return power_law(x, self.E, self.A, self.alpha)

    predict = __call__


@dataclass(frozen=True)
class ChinchillaFit:
    """Result of :func:`fit_chinchilla`: :math:`L = E + A N^{-\\alpha} + B D^{-\\beta}`.

    Has the same fields as :class:`scalinglab.scaling_laws.ChinchillaLaw`, so both work
    with :func:`compute_optimal`.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float = float("nan")
    n_starts: int = 0

    def __call__(self, N, D) -> np.ndarray:
        return chinchilla_loss(N, D, self.E, self.A, self.B, self.alpha, self.beta)

    predict = __call__


# ------------------------------------------------------------ the shared fitting engine
def _lse_objective(theta, log_x, log_y, delta, irreducible):
    """Huber objective (divided by ``delta``) and its gradient for
    :math:`\\log\\hat y = \\operatorname{LSE}(e, a_1 - \\alpha_1 \\log x_1, \\dots)`.

    ``theta = (e, a_1..a_m, alpha_1..alpha_m)`` (``e`` absent if not ``irreducible``).
    ``log_x`` has shape ``(m, n)``. Dividing by ``delta`` leaves the minimiser unchanged
    but keeps the gradient of order one, so L-BFGS's absolute tolerances stay meaningful.
    """
    m = log_x.shape[0]
    off = 1 if irreducible else 0
    a = theta[off : off + m, None]
    alpha = theta[off + m : off + 2 * m, None]
    terms = a - alpha * log_x  # (m, n)
    if irreducible:
        terms = np.vstack([np.full((1, log_x.shape[1]), theta[0]), terms])
    # Stable log-sum-exp written out (scipy's logsumexp costs more than the whole
    # objective on a few hundred points); w are the softmax weights d LSE / d term_k.
    top = terms.max(axis=0)
    w = np.exp(terms - top)
    total = w.sum(axis=0)
    w /= total
    r = top + np.log(total) - log_y
    absr = np.abs(r)
    obj = np.where(absr <= delta, 0.5 * r * r, delta * (absr - 0.5 * delta)).sum() / delta
    # d Huber(r)/dr / delta = clip(r / delta, -1, 1).
    gw = np.clip(r / delta, -1.0, 1.0) * w
    grad = np.empty_like(theta)
    if irreducible:
        grad[0] = gw[0].sum()
    gp = gw[off:]
    grad[off : off + m] = gp.sum(1)
    grad[off + m :] = -(gp * log_x).sum(1)
    return obj, grad


def _multistart(log_x, log_y, starts, delta, irreducible, maxiter=2000):
    """Run L-BFGS from every start and keep the lowest objective.

    BLAS is limited to one thread: L-BFGS-B calls BLAS on 5-vectors, where a
    multi-threaded OpenBLAS spends 1000x more time synchronising threads than computing
    (measured: 10 ms instead of 10 us per iteration on a busy 2-core machine).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _multistart_inner(log_x, log_y, starts, delta, irreducible, maxiter)


def _lbfgs(theta0, args, ftol, gtol, maxiter):
    return minimize(
        _lse_objective,
        theta0,
        args=args,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": maxiter, "ftol": ftol, "gtol": gtol},
    )


def _multistart_inner(log_x, log_y, starts, delta, irreducible, maxiter):
    # Two stages: every start with a loose tolerance (enough to tell the basins apart),
    # then polish the best few to a tight tolerance.
    args = (log_x, log_y, delta, irreducible)
    coarse = []
    for theta0 in np.atleast_2d(np.asarray(starts, dtype=np.float64)):
        res = _lbfgs(theta0, args, ftol=1e-9, gtol=1e-5, maxiter=maxiter)
        if np.all(np.isfinite(res.x)) and np.isfinite(res.fun):
            coarse.append(res)
    if not coarse:
        raise RuntimeError("every L-BFGS start diverged")
    coarse.sort(key=lambda r: r.fun)
    polished = [_lbfgs(r.x, args, ftol=1e-15, gtol=1e-10, maxiter=maxiter) for r in coarse[:3]]
    return min(polished + coarse[:1], key=lambda r: r.fun)


def _check_positive(name, v):
    v = np.asarray(v, dtype=np.float64).ravel()
    if v.size == 0 or np.any(~np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be a non-empty array of positive finite numbers")
    return v


# ------------------------------------------------------------------------ 1-D power law
def power_law_starts(x, y, irreducible: bool = True) -> np.ndarray:
    """Data-adapted starts ``(e, a, alpha)`` for :func:`fit_power_law`.

    The floor :math:`E` is tried at 0 %, 50 %, 90 % and 99 % of the smallest observed
    loss (0 % is approximated by a very small value); for each :math:`\\alpha` in a grid,
    :math:`A` is set so that the curve passes through the data at the median :math:`x`.
    """
    lx, y = np.log(x), np.asarray(y, dtype=np.float64)
    xm, ym = np.median(lx), np.median(y)
    starts = []
    fracs = (1e-6, 0.5, 0.9, 0.99) if irreducible else (0.0,)
    for frac in fracs:
        E = frac * y.min()
        for alpha in (0.05, 0.2, 0.5, 1.0, 2.0):
            a = np.log(max(ym - E, 1e-12)) + alpha * xm
            starts.append([np.log(E), a, alpha] if irreducible else [a, alpha])
    return np.asarray(starts)


def fit_power_law(
    x,
    y,
    *,
    irreducible: bool = True,
    delta: float = HUBER_DELTA,
    starts=None,
) -> PowerLawFit:
    """Fit :math:`y = E + A x^{-\\alpha}` by Huber loss on log-space residuals.

    ``irreducible=False`` fixes :math:`E = 0` (a straight line in log-log space, fitted
    with the same robust loss). ``starts`` overrides the default
    :func:`power_law_starts`, rows ``(log E, log A, alpha)`` (without ``log E`` when
    ``irreducible=False``).
    """
    x = _check_positive("x", x)
    y = _check_positive("y", y)
    if x.shape != y.shape:
        raise ValueError("x and y must have the same length")
    if starts is None:
        starts = power_law_starts(x, y, irreducible)
    res = _multistart(np.log(x)[None, :], np.log(y), starts, delta, irreducible)
    if irreducible:
        e, a, alpha = res.x
        return PowerLawFit(float(np.exp(e)), float(np.exp(a)), float(alpha), float(res.fun))
    a, alpha = res.x
    return PowerLawFit(0.0, float(np.exp(a)), float(alpha), float(res.fun))


def fit_loglog_line(x, y) -> PowerLawFit:
    """The naive fit: least-squares straight line through :math:`(\\log x, \\log y)`,
    i.e. :math:`y = A x^{-\\alpha}` with no floor. Shown on the page as what goes wrong
    when the data have an irreducible term."""
    x = _check_positive("x", x)
    y = _check_positive("y", y)
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return PowerLawFit(0.0, float(np.exp(intercept)), float(-slope), method="ols-loglog")


# --------------------------------------------------------------------- Chinchilla fit
def chinchilla_starts(N, D, L) -> np.ndarray:
    """27 data-adapted starts ``(e, a, b, alpha, beta)`` for :func:`fit_chinchilla`.

    The floor :math:`E` is tried at 10 %, 50 % and 90 % of the smallest observed loss,
    the exponents at :math:`(\\alpha, \\beta) \\in \\{0.15, 0.4, 1.0\\}^2`; :math:`A` and
    :math:`B` are then set so that each of the two power-law terms carries half of the
    reducible loss at the median :math:`(N, D)`. This puts every start at the right scale
    whatever the units of :math:`N` and :math:`D`, which is why so few are needed.
    """
    lN, lD, L = np.log(N), np.log(D), np.asarray(L, dtype=np.float64)
    nm, dm, lm = np.median(lN), np.median(lD), np.median(L)
    starts = []
    for frac in (0.1, 0.5, 0.9):
        E = frac * L.min()
        half = np.log(max(lm - E, 1e-12) / 2)
        for alpha in (0.15, 0.4, 1.0):
            for beta in (0.15, 0.4, 1.0):
                starts.append([np.log(E), half + alpha * nm, half + beta * dm, alpha, beta])
    return np.asarray(starts)


def hoffmann_grid() -> np.ndarray:
    """The 4500-point start grid of Hoffmann et al. (2022, appendix D.2), rows
    ``(e, a, b, alpha, beta)``: :math:`\\alpha, \\beta \\in \\{0, 0.5, \\dots, 2\\}`,
    :math:`e \\in \\{-1, -0.5, \\dots, 1\\}`, :math:`a, b \\in \\{0, 5, \\dots, 25\\}`.
    Used by the tests as the brute-force reference for :func:`chinchilla_starts`."""
    ab = np.arange(0.0, 2.01, 0.5)
    es = np.arange(-1.0, 1.01, 0.5)
    logs = np.arange(0.0, 25.1, 5.0)
    grid = np.meshgrid(es, logs, logs, ab, ab, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def fit_chinchilla(
    N,
    D,
    L,
    *,
    delta: float = HUBER_DELTA,
    starts=None,
    floor: float | None = None,
) -> ChinchillaFit:
    """Fit :math:`L = E + A N^{-\\alpha} + B D^{-\\beta}` as in Hoffmann et al. (2022).

    With ``floor`` given, :math:`E` is not fitted but fixed to it, and the two power laws
    are fitted to the reducible loss :math:`L - E` (same Huber loss on log residuals,
    ``starts`` then without the ``log E`` column): for a source whose floor is known.

    Parameters
    ----------
    N, D, L:
        Parameters, training tokens (or examples) and final loss of each run (1-D arrays
        of positive numbers, same length).
    delta:
        Huber threshold on the log-space residuals (default :data:`HUBER_DELTA` = 1e-3).
    starts:
        L-BFGS starting points, rows ``(log E, log A, log B, alpha, beta)``; default
        :func:`chinchilla_starts` (27 data-adapted starts). Pass :func:`hoffmann_grid`
        to reproduce the paper's 4500-start search.

    Returns
    -------
    ChinchillaFit
        Fitted ``E, A, B, alpha, beta``, the objective (Huber sum divided by ``delta``)
        and the number of starts used.
    """
    N = _check_positive("N", N)
    D = _check_positive("D", D)
    L = _check_positive("L", L)
    if not (N.shape == D.shape == L.shape):
        raise ValueError("N, D and L must have the same length")
    if floor is not None:
        R = L - float(floor)
        if np.any(R <= 0):
            raise ValueError("with a known floor every loss must lie above it")
        if starts is None:
            starts = chinchilla_starts(N, D, R + R.min())[9:18, 1:]  # E = R.min(): dropped
        starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
        res = _multistart(np.log(np.vstack([N, D])), np.log(R), starts, delta, False)
        a, b, alpha, beta = res.x
        return ChinchillaFit(
            E=float(floor),
            A=float(np.exp(a)),
            B=float(np.exp(b)),
            alpha=float(alpha),
            beta=float(beta),
            objective=float(res.fun),
            n_starts=len(starts),
        )
    if starts is None:
        starts = chinchilla_starts(N, D, L)
    starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
    # Internal order is (e, a, b, alpha, beta), matching the public start rows.
    res = _multistart(np.log(np.vstack([N, D])), np.log(L), starts, delta, irreducible=True)
    e, a, b, alpha, beta = res.x
    return ChinchillaFit(
        E=float(np.exp(e)),
        A=float(np.exp(a)),
        B=float(np.exp(b)),
        alpha=float(alpha),
        beta=float(beta),
        objective=float(res.fun),
        n_starts=len(starts),
    )


# --------------------------------------------------------- compute-optimal allocation
def compute_optimal(C, params, flops_per_token_param: float = 6.0):
    """Closed-form compute-optimal model size and data for budget ``C`` (FLOPs).

    Minimising :math:`L(N, D)` subject to :math:`C = kND` (:math:`k = 6`): substitute
    :math:`D = C/(kN)`, set :math:`\\partial L/\\partial N = 0`:
    :math:`\\alpha A N^{-\\alpha} = \\beta B D^{-\\beta}`, whence

    .. math:: N_{\\rm opt} = G (C/k)^{\\beta/(\\alpha+\\beta)}, \\quad
              D_{\\rm opt} = G^{-1} (C/k)^{\\alpha/(\\alpha+\\beta)}, \\quad
              G = (\\alpha A / \\beta B)^{1/(\\alpha+\\beta)}.

    ``params`` is anything with attributes (or keys) ``A, B, alpha, beta``: a
    :class:`ChinchillaFit` or a :class:`scalinglab.scaling_laws.ChinchillaLaw`.
    Returns ``(N_opt, D_opt)`` with the shape of ``C``.
    """

    def get(k):
        return float(params[k] if isinstance(params, Mapping) else getattr(params, k))

    A, B, alpha, beta = get("A"), get("B"), get("alpha"), get("beta")
    C = np.asarray(C, dtype=np.float64)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    base = C / flops_per_token_param
    n_opt = G * base ** (beta / (alpha + beta))
    d_opt = base ** (alpha / (alpha + beta)) / G
    return n_opt, d_opt


# ---------------------------------------------------------------- frontier of a sweep
@dataclass(frozen=True)
class Frontier:
    """The compute-optimal (Pareto) frontier of a set of (compute, loss) points.

    ``compute`` and ``loss`` are the frontier points sorted by compute; ``index`` are
    their positions in the flattened input. :meth:`__call__` evaluates the staircase
    :math:`F(C) = \\min\\{L_i : C_i \\le C\\}` (``inf`` below the smallest compute).
    """

    compute: np.ndarray
    loss: np.ndarray
    index: np.ndarray
    labels: list = field(default_factory=list)

    def __call__(self, C) -> np.ndarray:
        C = np.asarray(C, dtype=np.float64)
        pos = np.searchsorted(self.compute, C, side="right") - 1
        out = np.where(pos >= 0, self.loss[np.clip(pos, 0, None)], np.inf)
        return out


def _flatten_records(records, compute_key, loss_key, curve_key, label_key):
    """Points (compute, loss, label) from records: one point per record, or, when a
    record holds a training curve under ``curve_key`` (a list of dicts or a dict of
    lists), one point per logged step."""
    cs, ls, labels = [], [], []
    for i, rec in enumerate(records):
        label = rec.get(label_key, i) if label_key else i
        curve = rec.get(curve_key) if curve_key else None
        if curve:
            if isinstance(curve, Mapping):
                c, v = curve[compute_key], curve[loss_key]
            else:
                c = [p[compute_key] for p in curve]
                v = [p[loss_key] for p in curve]
            cs.extend(c)
            ls.extend(v)
            labels.extend([label] * len(c))
        else:
            cs.append(rec[compute_key])
            ls.append(rec[loss_key])
            labels.append(label)
    return np.asarray(cs, dtype=np.float64), np.asarray(ls, dtype=np.float64), labels


def compute_frontier(
    records: Iterable[Mapping] | None = None,
    *,
    compute=None,
    loss=None,
    compute_key: str = "flops",
    loss_key: str = "test_loss",
    curve_key: str | None = "curve",
    label_key: str | None = "n_params",
) -> Frontier:
    """Lower envelope of loss against compute: the runs no other run beats with less
    compute.

    A point :math:`(C_i, L_i)` is on the frontier iff no other point is at least as good
    in both (:math:`C_j \\le C_i`, :math:`L_j \\le L_i`) and better in one (duplicates
    count once). Sorting by compute and keeping the points that set a new
    running minimum finds them in :math:`O(n \\log n)`.

    Pass either ``records`` (dicts with ``compute_key`` and ``loss_key``, or a training
    curve under ``curve_key``) or the arrays ``compute`` and ``loss``.
    """
    if records is not None:
        c, v, labels = _flatten_records(list(records), compute_key, loss_key, curve_key, label_key)
    else:
        c = np.asarray(compute, dtype=np.float64).ravel()
        v = np.asarray(loss, dtype=np.float64).ravel()
        labels = list(range(c.size))
    if c.shape != v.shape or c.size == 0:
        raise ValueError("need the same, non-zero number of compute and loss values")
    # Sort by compute, ties broken by loss so the best of equal-compute points comes first.
    order = np.lexsort((v, c))
    running = np.minimum.accumulate(v[order])
    new_min = np.empty(order.size, dtype=bool)
    new_min[0] = True
    new_min[1:] = running[1:] < running[:-1]
    keep = order[new_min]
    return Frontier(c[keep], v[keep], keep, [labels[i] for i in keep])


# ------------------------------------------------------------------------- bootstrap
def bootstrap(
    fit: Callable[..., object],
    *arrays: Sequence[float],
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    fields: Sequence[str] | None = None,
    **fit_kwargs,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of a fit's parameters.

    Resamples the data points (rows of ``arrays``) with replacement ``n_boot`` times,
    refits with ``fit(*resampled, **fit_kwargs)`` and returns, for each parameter in
    ``fields`` (default: every float field of the result), the central ``level``
    interval of the refitted values. Tip: pass ``starts=`` with the full-data optimum to
    make each refit a single, fast L-BFGS run.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    n = arrays[0].size
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        res = fit(*(a[idx] for a in arrays), **fit_kwargs)
        names = fields or [
            k for k, v in vars(res).items() if isinstance(v, float) and k != "objective"
        ]
        for k in names:
            samples.setdefault(k, []).append(getattr(res, k))
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return {k: (float(np.quantile(v, lo)), float(np.quantile(v, hi))) for k, v in samples.items()}


def to_starts(fit: ChinchillaFit | PowerLawFit) -> np.ndarray:
    """A fitted result as a single L-BFGS start row (for warm-started refits)."""
    if isinstance(fit, ChinchillaFit):
        return np.array(
            [[np.log(fit.E), np.log(fit.A), np.log(fit.B), fit.alpha, fit.beta]], dtype=float
        )
    if fit.E > 0:
        return np.array([[np.log(fit.E), np.log(fit.A), fit.alpha]])
    return np.array([[np.log(fit.A), fit.alpha]])


# ------------------------------------------------------------ IsoFLOP profiles (approach 2)
def parabola_minimum(N, L) -> tuple[float, float]:
    """Vertex of the parabola :math:`L \\approx c_0 + c_1 \\log N + c_2 (\\log N)^2` fitted by
    least squares, as Hoffmann et al. (2022, approach 2) fit each IsoFLOP profile.
    Returns ``(N_opt, L_opt)``; raises if the parabola does not open upwards."""
    log_n = np.log(_check_positive("N", N))
    L = np.asarray(L, dtype=np.float64)
    if log_n.size < 3 or log_n.shape != L.shape:
        raise ValueError("need at least 3 (N, L) pairs of equal length")
    c2, c1, c0 = np.polyfit(log_n, L, 2)
    if c2 <= 0:
        raise ValueError("the IsoFLOP profile has no minimum (parabola opens downwards)")
    x = -c1 / (2 * c2)
    return float(np.exp(x)), float(c0 + c1 * x + c2 * x**2)


def isoflop_profiles(
    records,
    budgets,
    *,
    compute_key: str = "flops",
    loss_key: str = "test_loss",
    size_key: str = "n_params",
    min_models: int = 3,
) -> list[dict]:
    """IsoFLOP profiles of a sweep (Hoffmann et al. 2022, approach 2).

    For every budget :math:`C`, each model size whose training curve covers :math:`C`
    contributes its loss at exactly that compute (linear interpolation in
    :math:`\\log C`); a parabola in :math:`\\log N` through these points gives the
    compute-optimal size at that budget. Budgets with fewer than ``min_models`` sizes are
    skipped. Returns one dict per budget: ``budget``, ``N``, ``L`` (arrays), ``N_opt``,
    ``L_opt``.
    """
    curves: dict[float, list[tuple[float, float]]] = {}
    for r in records:
        if r[compute_key] > 0:
            curves.setdefault(float(r[size_key]), []).append((r[compute_key], r[loss_key]))
    out = []
    for budget in np.atleast_1d(np.asarray(budgets, dtype=np.float64)):
        ns, ls = [], []
        for n, pts in sorted(curves.items()):
            c, l_ = np.array(sorted(pts)).T
            if c[0] <= budget <= c[-1]:
                ns.append(n)
                ls.append(float(np.interp(np.log(budget), np.log(c), l_)))
        if len(ns) < min_models:
            continue
        n_opt, l_opt = parabola_minimum(ns, ls)
        out.append(
            {
                "budget": float(budget),
                "N": np.array(ns),
                "L": np.array(ls),
                "N_opt": n_opt,
                "L_opt": l_opt,
            }
        )
    return out


def log_reducible_error(predicted, measured, floor) -> np.ndarray:
    """Error of a loss prediction on the *reducible* part:
    :math:`\\log\\big((\\hat L - E)/(L - E)\\big)` for a floor :math:`E`. 0 is perfect,
    :math:`\\pm\\log 2` is a factor of two; a prediction at or below the floor is
    infinitely wrong (``-inf``). Scoring the relative error of :math:`L` instead hides
    everything that matters when :math:`L` is close to :math:`E`: a constant predictor
    equal to the floor then looks excellent."""
    predicted = np.asarray(predicted, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    if np.any(measured <= floor):
        raise ValueError("the measured losses must lie above the floor")
    gap = predicted - floor
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 0, np.log(np.where(gap > 0, gap, 1.0) / (measured - floor)), -np.inf)
