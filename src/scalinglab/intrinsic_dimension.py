r"""Intrinsic-dimension estimators from nearest-neighbour distances (chapter 3).

Both estimators rest on one fact. Around a point of a :math:`d`-dimensional manifold,
sampled with a locally constant density :math:`\rho`, the number of sample points within
radius :math:`r` is Poisson with mean :math:`\rho\, V_d\, r^d`. The *volume grows as*
:math:`r^d`, so distances to successive neighbours carry :math:`d` in their ratios -- and
the unknown density cancels in every ratio.

**TwoNN** (Facco et al. 2017). Let :math:`r_1 < r_2` be a point's distances to its first
and second neighbours and :math:`\mu = r_2 / r_1`. Under the local Poisson model
:math:`\mu` is Pareto distributed, independently of :math:`\rho`:

.. math::  f(\mu) = d\,\mu^{-d-1}, \qquad F(\mu) = 1 - \mu^{-d} \quad (\mu \ge 1),

so :math:`-\log(1 - F(\mu)) = d \log \mu` is a straight line through the origin with slope
:math:`d`. Sort the :math:`N` ratios, set :math:`F_\text{emp}(\mu_{(i)}) = i/N`, drop the
largest fraction (10 % in the paper: the tail is where curvature and noise bite) and fit
the slope by least squares through the origin. The likelihood gives a closed form too:
:math:`\log \mu \sim \text{Exponential}(d)`, whose maximum-likelihood estimate is
:math:`N / \sum_i \log \mu_i`; we use its unbiased version
:math:`\hat d = (N - 1) / \sum_i \log \mu_i`.

**Levina--Bickel MLE** (Levina & Bickel 2004). With :math:`T_j(x)` the distance from
:math:`x` to its :math:`j`-th neighbour, the log-likelihood of the Poisson process inside
the ball of radius :math:`T_k(x)` is maximized at

.. math::  \hat m_k(x) = \Big[\frac{1}{k-1} \sum_{j=1}^{k-1} \log \frac{T_k(x)}{T_j(x)}\Big]^{-1}

(with :math:`k-2` instead of :math:`k-1` the local estimate is unbiased). Levina and
Bickel averaged :math:`\hat m_k(x)` over points; MacKay & Ghahramani (2005) pointed out
that it is the *inverse* estimates that are (approximately) unbiased and independent,
so the right global estimate averages those:
:math:`\hat m_k = \big[\frac1N \sum_i \hat m_k(x_i)^{-1}\big]^{-1}`.

Both estimators need distinct points: a duplicate has :math:`r_1 = 0` and an infinite
ratio. We therefore drop exact duplicate rows first (:func:`unique_points`); duplicates
carry no information about the geometry of the manifold.

Nearest neighbours come from :class:`sklearn.neighbors.NearestNeighbors`. The
implementations agree with ``skdim.id.TwoNN`` and ``skdim.id.MLE`` on duplicate-free
data (see ``tests/test_intrinsic_dimension.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "unique_points",
    "knn_distances",
    "twonn_ratios",
    "TwoNNFit",
    "twonn_fit",
    "twonn",
    "mle_local",
    "mle_levina_bickel",
    "pca_dimension",
    "layer_dimensions",
]


def unique_points(x: np.ndarray) -> np.ndarray:
    """Return the distinct rows of ``x`` (shape ``(n, D)``) in their original order."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, D), got {x.shape}")
    _, first = np.unique(x, axis=0, return_index=True)
    return x[np.sort(first)]


def knn_distances(x: np.ndarray, k: int) -> np.ndarray:
    r"""Distances :math:`T_1(x_i) \le \dots \le T_k(x_i)` from each distinct point to its
    ``k`` nearest *other* points, shape ``(n_unique, k)``.

    Duplicate rows are removed first (:func:`unique_points`), so every distance is
    positive. Uses :class:`sklearn.neighbors.NearestNeighbors` (exact search).
    """
    x = unique_points(x)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k >= len(x):
        raise ValueError(f"need more than k={k} distinct points, got {len(x)}")
    # kneighbors() without a query excludes each point from its own neighbour list.
    dist, _ = NearestNeighbors(n_neighbors=int(k)).fit(x).kneighbors()
    return dist


def twonn_ratios(x: np.ndarray) -> np.ndarray:
    r"""The ratios :math:`\mu_i = r_2(x_i) / r_1(x_i) \ge 1` for every distinct point."""
    dist = knn_distances(x, 2)
    return dist[:, 1] / dist[:, 0]


@dataclass(frozen=True)
class TwoNNFit:
    r"""Result of :func:`twonn_fit`.

    ``log_mu`` and ``neg_log_survival`` are the kept points
    :math:`(\log \mu_{(i)}, -\log(1 - i/N))` of the Facco et al. plot, sorted; for data of
    dimension :math:`d` they lie on the line of slope ``dimension`` through the origin.
    """

    dimension: float
    log_mu: np.ndarray
    neg_log_survival: np.ndarray
    n_points: int
    n_kept: int


def twonn_fit(x: np.ndarray, discard_fraction: float = 0.1, method: str = "linear") -> TwoNNFit:
    r"""TwoNN estimate of the intrinsic dimension of the points ``x`` (shape ``(n, D)``).

    Parameters
    ----------
    discard_fraction:
        Fraction of the *largest* ratios :math:`\mu` to leave out of the fit (Facco et al.
        use 0.1). With ``method="mle"`` the left-out ratios are treated as censored at the
        largest kept value (Type-II censoring of an exponential), not ignored.
    method:
        ``"linear"``: least-squares slope through the origin of
        :math:`-\log(1 - F_\text{emp})` against :math:`\log \mu`, with
        :math:`F_\text{emp}(\mu_{(i)}) = i/N` (Facco et al. 2017).
        ``"mle"``: :math:`\hat d = (k-1) / \big(\sum_{i \le k} \log\mu_{(i)} + (N-k)
        \log \mu_{(k)}\big)` with :math:`k` kept ratios, which is
        :math:`(N-1)/\sum_i \log \mu_i` when nothing is discarded.
    """
    if not 0.0 <= discard_fraction < 1.0:
        raise ValueError(f"discard_fraction must be in [0, 1), got {discard_fraction}")
    if method not in ("linear", "mle"):
        raise ValueError(f"method must be 'linear' or 'mle', got {method!r}")
    mu = np.sort(twonn_ratios(x))
    n = len(mu)
    n_keep = int(n * (1.0 - discard_fraction))
    if method == "linear":
        # F_emp = i/N reaches 1 at i = N, where -log(1 - F) is infinite: the largest
        # ratio can never enter the linear fit.
        n_keep = min(n_keep, n - 1)
    if n_keep < 2:
        raise ValueError(f"too few points left for the fit ({n_keep}); need more data")
    log_mu = np.log(mu[:n_keep])
    with np.errstate(divide="ignore"):  # only "mle" keeps i = N, where y = inf (not used)
        y = -np.log1p(-np.arange(1, n_keep + 1) / n)
    if method == "linear":
        # Least squares through the origin: slope = <x, y> / <x, x>.
        dim = float(log_mu @ y / (log_mu @ log_mu))
    else:
        dim = float((n_keep - 1) / (log_mu.sum() + (n - n_keep) * log_mu[-1]))
    return TwoNNFit(dim, log_mu, y, n, n_keep)


def twonn(x: np.ndarray, discard_fraction: float = 0.1, method: str = "linear") -> float:
    """TwoNN intrinsic dimension of ``x``; see :func:`twonn_fit` for the parameters."""
    return twonn_fit(x, discard_fraction=discard_fraction, method=method).dimension


def mle_local(x: np.ndarray, k: int = 20, unbiased: bool = False) -> np.ndarray:
    r"""Levina--Bickel local estimates :math:`\hat m_k(x_i)` for every distinct point.

    :math:`\hat m_k(x) = (k - 1) / \sum_{j=1}^{k-1} \log(T_k / T_j)`, or :math:`k - 2` in
    the numerator when ``unbiased`` (needs ``k >= 3``).
    """
    if k < 2 or (unbiased and k < 3):
        raise ValueError(f"k is too small for the MLE: {k}")
    t = knn_distances(x, k)
    # Sum over j = 1..k-1 of log(T_k / T_j); the j = k term is log 1 = 0.
    s = np.log(t[:, -1:] / t[:, :-1]).sum(axis=1)
    return ((k - 2) if unbiased else (k - 1)) / s


def mle_levina_bickel(
    x: np.ndarray,
    k: int | tuple[int, int] = 20,
    unbiased: bool = False,
    average: str = "mackay",
) -> float:
    r"""Global Levina--Bickel maximum-likelihood intrinsic dimension of ``x``.

    Parameters
    ----------
    k:
        Number of neighbours, or a range ``(k1, k2)``: then the global estimate is averaged
        over :math:`k = k_1, \dots, k_2` as in Levina & Bickel (2004), who used 10..20.
    unbiased:
        Use :math:`k-2` instead of :math:`k-1` in the local estimate.
    average:
        ``"mackay"`` -- harmonic mean of the local estimates,
        :math:`[\frac1N\sum_i \hat m_k(x_i)^{-1}]^{-1}` (MacKay & Ghahramani 2005);
        ``"mean"`` -- arithmetic mean as in the original paper (biased upwards for small k).
    """
    if average not in ("mackay", "mean"):
        raise ValueError(f"average must be 'mackay' or 'mean', got {average!r}")
    ks = range(k[0], k[1] + 1) if isinstance(k, tuple) else [k]
    estimates = []
    for kk in ks:
        local = mle_local(x, kk, unbiased=unbiased)
        estimates.append(1.0 / np.mean(1.0 / local) if average == "mackay" else np.mean(local))
    return float(np.mean(estimates))


def pca_dimension(x: np.ndarray, explained: float = 0.95) -> int:
    r"""Number of principal components needed to explain a fraction ``explained`` of the
    variance -- the *linear* dimension, which over-counts on curved manifolds (a circle
    needs 2 components, a swiss roll 3).
    """
    if not 0.0 < explained <= 1.0:
        raise ValueError(f"explained must be in (0, 1], got {explained}")
    x = np.asarray(x, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    ratio = np.cumsum(s**2) / np.sum(s**2)
    # Tolerance: with explained = 1 the last ratio may be 1 - 1e-16.
    return int(np.searchsorted(ratio, explained - 1e-12) + 1)


def layer_dimensions(
    model, x: np.ndarray, estimator: Callable[[np.ndarray], float] = twonn
) -> list[float]:
    r"""Intrinsic dimension of the inputs ``x`` and of each hidden representation of ``model``.

    ``model`` is a :class:`scalinglab.models.mlp.MLP` (anything with ``.hidden(x)`` returning
    the list of post-activation layers ``[h_1, ..., h_L]``). Returns
    ``[estimator(x), estimator(h_1), ..., estimator(h_L)]`` -- the profile Ansuini et al.
    (2019) measured across the layers of trained networks, where the last hidden layers
    are far lower-dimensional than the input.
    """
    import torch  # local import: the estimators above need only NumPy and scikit-learn

    x = np.asarray(x, dtype=np.float64)
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    with torch.no_grad():
        xt = torch.as_tensor(x, dtype=param.dtype, device=param.device)
        hidden = [h.detach().cpu().double().numpy() for h in model.hidden(xt)]
    model.train(was_training)
    return [float(estimator(x))] + [float(estimator(h)) for h in hidden]
