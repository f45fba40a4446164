r"""Samplers for manifolds of known intrinsic dimension.

Each sampler draws ``n`` points from a smooth manifold :math:`\mathcal M` of dimension
:math:`d` embedded in :math:`\mathbb R^D` and returns a float64 array of shape ``(n, D)``.
Because :math:`d` is known exactly, these data sets are the ground truth for chapter 3
(intrinsic-dimension estimators) and chapter 5 (teacher--student scaling with inputs on a
manifold: Sharma & Kaplan's :math:`\alpha \approx 4/d` is for model size with ample data;
the data-side exponent is Bahri et al.'s resolution-limited regime).

=====================================  ==============  ========================
sampler                                intrinsic d     ambient D
=====================================  ==============  ========================
:func:`sample_hypersphere`             ``d``           ``d + 1``
:func:`sample_linear_subspace`         ``d``           ``ambient_dim``
:func:`sample_torus`                   ``d``           ``2 d``
:func:`sample_swiss_roll`              2               3
:func:`sample_cosine_surface`          2               3
=====================================  ==============  ========================

:func:`embed_isometric` rotates any of them into a higher-dimensional space with a random
orthonormal map. Distances are preserved exactly, so the intrinsic dimension (and every
distance-based estimate of it) is unchanged while the ambient dimension grows -- the
situation of real images, which live in a huge pixel space but vary along few directions.

Every function takes an explicit :class:`numpy.random.Generator` so that the same seed
gives the same points.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sample_hypersphere",
    "sample_linear_subspace",
    "sample_torus",
    "sample_swiss_roll",
    "sample_cosine_surface",
    "embed_isometric",
    "random_orthonormal",
]


def _check_positive(name: str, value: int) -> int:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def random_orthonormal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    r"""A ``(rows, cols)`` matrix with orthonormal columns, uniformly (Haar) distributed.

    QR-decompose a standard Gaussian matrix :math:`G = QR`. The columns of :math:`Q` span a
    uniformly random ``cols``-dimensional subspace; multiplying column :math:`j` by
    :math:`\operatorname{sign}(R_{jj})` removes the bias of the QR sign convention so that
    :math:`Q` itself is Haar-distributed (Mezzadri 2007, *How to generate random matrices
    from the classical compact groups*). Requires ``rows >= cols``.
    """
    rows, cols = _check_positive("rows", rows), _check_positive("cols", cols)
    if rows < cols:
        raise ValueError(f"need rows >= cols for orthonormal columns, got {rows} < {cols}")
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def sample_hypersphere(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    r"""``n`` points uniform on the unit :math:`d`-sphere :math:`S^d \subset \mathbb R^{d+1}`.

    A standard Gaussian vector :math:`g \in \mathbb R^{d+1}` is rotation invariant, so its
    direction :math:`g / \lVert g \rVert` is uniform on the sphere (Muller 1959). The
    sphere :math:`S^d = \{x : \lVert x \rVert = 1\}` has intrinsic dimension :math:`d`
    (``d = 1`` is the circle, ``d = 2`` the ordinary sphere).
    """
    n, d = _check_positive("n", n), _check_positive("d", d)
    g = rng.standard_normal((n, d + 1))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def sample_linear_subspace(
    n: int, d: int, ambient_dim: int, rng: np.random.Generator
) -> np.ndarray:
    r"""``n`` Gaussian points in a random ``d``-dimensional linear subspace of
    :math:`\mathbb R^{D}`, ``D = ambient_dim``.

    :math:`x = U z` with :math:`z \sim \mathcal N(0, I_d)` and :math:`U \in \mathbb R^{D
    \times d}` a random orthonormal basis (:func:`random_orthonormal`). PCA finds exactly
    ``d`` non-zero variances here; a curved manifold (sphere, swiss roll) is where PCA
    over-counts and nearest-neighbour estimators are needed.
    """
    n, d = _check_positive("n", n), _check_positive("d", d)
    ambient_dim = _check_positive("ambient_dim", ambient_dim)
    if ambient_dim < d:
        raise ValueError(f"ambient_dim must be >= d, got {ambient_dim} < {d}")
    basis = random_orthonormal(ambient_dim, d, rng)
    return rng.standard_normal((n, d)) @ basis.T


def sample_torus(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    r"""``n`` points uniform on the flat :math:`d`-torus embedded in :math:`\mathbb R^{2d}`.

    Draw angles :math:`\theta_1, \dots, \theta_d \sim U[0, 2\pi)` and map each to a unit
    circle: :math:`x = (\cos\theta_1, \sin\theta_1, \dots, \cos\theta_d, \sin\theta_d)`.
    This product of circles (the Clifford torus, scaled) is flat -- the embedding is an
    isometry of :math:`[0, 2\pi)^d` with periodic boundaries -- so the uniform angle
    density is the uniform density on the manifold and there are no edges to bias
    nearest-neighbour estimators.
    """
    n, d = _check_positive("n", n), _check_positive("d", d)
    theta = rng.uniform(0.0, 2.0 * np.pi, size=(n, d))
    out = np.empty((n, 2 * d))
    out[:, 0::2] = np.cos(theta)
    out[:, 1::2] = np.sin(theta)
    return out


def sample_swiss_roll(n: int, rng: np.random.Generator) -> np.ndarray:
    r"""``n`` points on the swiss roll, a 2-D sheet rolled up in :math:`\mathbb R^3`.

    Same parameterization as :func:`sklearn.datasets.make_swiss_roll` (without noise):
    :math:`t = \tfrac{3\pi}{2}(1 + 2u)`, :math:`u \sim U[0, 1]`, height
    :math:`h \sim U[0, 21]`, and :math:`x = (t\cos t,\; h,\; t\sin t)`. The intrinsic
    dimension is 2 although no 2-D linear projection unrolls it.
    """
    n = _check_positive("n", n)
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n))
    h = 21.0 * rng.uniform(size=n)
    return np.column_stack([t * np.cos(t), h, t * np.sin(t)]).astype(np.float64)


def sample_cosine_surface(
    n: int, rng: np.random.Generator, *, low: float = -np.pi, high: float = np.pi
) -> np.ndarray:
    r"""The 3-pixel example: ``n`` "images" of three pixels with :math:`x_3 = 1 + \cos x_2`.

    Pixels :math:`x_1, x_2 \sim U[\text{low}, \text{high}]` are free and the third is a
    smooth function of the second, so the data fill a 2-D surface inside the 3-D pixel
    space: knowing two coordinates pins down the third. Real images are the same story
    with :math:`10^5` pixels and far more constraints.
    """
    n = _check_positive("n", n)
    if not high > low:
        raise ValueError(f"need high > low, got low={low}, high={high}")
    x1 = rng.uniform(low, high, size=n)
    x2 = rng.uniform(low, high, size=n)
    return np.column_stack([x1, x2, 1.0 + np.cos(x2)]).astype(np.float64)


def embed_isometric(x: np.ndarray, ambient_dim: int, rng: np.random.Generator) -> np.ndarray:
    r"""Embed points ``x`` of shape ``(n, D)`` into :math:`\mathbb R^{D'}`,
    ``D' = ambient_dim >= D``, by a random isometry.

    :math:`y = x Q^\top` with :math:`Q \in \mathbb R^{D' \times D}` having orthonormal
    columns, so :math:`\lVert y_i - y_j \rVert = \lVert x_i - x_j \rVert` for all pairs:
    the manifold and its intrinsic dimension are unchanged, only the number of
    coordinates grows (and every coordinate now mixes all the original ones).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, D), got {x.shape}")
    ambient_dim = _check_positive("ambient_dim", ambient_dim)
    if ambient_dim < x.shape[1]:
        raise ValueError(f"ambient_dim must be >= x.shape[1], got {ambient_dim} < {x.shape[1]}")
    q = random_orthonormal(ambient_dim, x.shape[1], rng)
    return x @ q.T
