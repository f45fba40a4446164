"""Samplers of manifolds with known intrinsic dimension, checked against closed forms,
SciPy distribution tests and scikit-learn's swiss roll."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist
from sklearn.datasets import make_swiss_roll

from scalinglab.data.manifolds import (
    embed_isometric,
    random_orthonormal,
    sample_cosine_surface,
    sample_hypersphere,
    sample_linear_subspace,
    sample_swiss_roll,
    sample_torus,
)

# Distribution tests use a fixed seed, so they are deterministic; the p-value threshold is
# far below what a correct sampler produces but far above what a biased one does.
P_MIN = 1e-3

SAMPLERS = {
    "sphere": lambda n, rng: sample_hypersphere(n, 3, rng),
    "subspace": lambda n, rng: sample_linear_subspace(n, 3, 7, rng),
    "torus": lambda n, rng: sample_torus(n, 2, rng),
    "swiss": lambda n, rng: sample_swiss_roll(n, rng),
    "cosine": lambda n, rng: sample_cosine_surface(n, rng),
    "embedded": lambda n, rng: embed_isometric(sample_swiss_roll(n, rng), 10, rng),
}
SHAPES = {"sphere": 4, "subspace": 7, "torus": 4, "swiss": 3, "cosine": 3, "embedded": 10}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_shape_dtype_and_determinism(name):
    x = SAMPLERS[name](50, np.random.default_rng(3))
    assert x.shape == (50, SHAPES[name])
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, SAMPLERS[name](50, np.random.default_rng(3)))
    assert not np.allclose(x, SAMPLERS[name](50, np.random.default_rng(4)))


@pytest.mark.parametrize("d", [1, 2, 5])
def test_hypersphere_unit_norm_and_isotropic(d):
    x = sample_hypersphere(20000, d, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    # Uniform on S^d: mean 0 and covariance I / (d + 1) (the trace is |x|^2 = 1).
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(np.cov(x.T), np.eye(d + 1) / (d + 1), atol=0.02)


def test_sphere_s2_height_is_uniform():
    # Archimedes' hat-box theorem: on S^2 any coordinate is uniform on [-1, 1].
    x = sample_hypersphere(5000, 2, np.random.default_rng(1))
    assert stats.kstest(x[:, 2], stats.uniform(loc=-1, scale=2).cdf).pvalue > P_MIN


def test_linear_subspace_has_rank_d_and_unit_variances():
    x = sample_linear_subspace(5000, 3, 9, np.random.default_rng(0))
    assert np.linalg.matrix_rank(x, tol=1e-8) == 3
    eig = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    np.testing.assert_allclose(eig[:3], 1.0, atol=0.08)
    np.testing.assert_allclose(eig[3:], 0.0, atol=1e-10)


def test_torus_is_product_of_uniform_circles():
    x = sample_torus(4000, 3, np.random.default_rng(0))
    pairs = x.reshape(len(x), 3, 2)
    np.testing.assert_allclose(np.linalg.norm(pairs, axis=2), 1.0, atol=1e-12)
    angles = np.arctan2(pairs[..., 1], pairs[..., 0]) % (2 * np.pi)
    for j in range(3):
        assert stats.kstest(angles[:, j], stats.uniform(scale=2 * np.pi).cdf).pvalue > P_MIN
    # Independent angles: their correlation vanishes.
    assert np.abs(np.corrcoef(angles.T)[np.triu_indices(3, 1)]).max() < 0.05


def test_swiss_roll_matches_scikit_learn_distribution():
    ours = sample_swiss_roll(4000, np.random.default_rng(0))
    ref, t_ref = make_swiss_roll(4000, noise=0.0, random_state=0)
    # The roll parameter t is the distance from the axis: x = t cos t, z = t sin t.
    t = np.hypot(ours[:, 0], ours[:, 2])
    np.testing.assert_allclose(ours[:, 0], t * np.cos(t), atol=1e-9)
    np.testing.assert_allclose(ours[:, 2], t * np.sin(t), atol=1e-9)
    for j in range(3):
        assert stats.ks_2samp(ours[:, j], ref[:, j]).pvalue > P_MIN
    assert stats.ks_2samp(t, t_ref).pvalue > P_MIN


def test_cosine_surface_is_the_three_pixel_example():
    x = sample_cosine_surface(3000, np.random.default_rng(0))
    np.testing.assert_allclose(x[:, 2], 1.0 + np.cos(x[:, 1]), atol=1e-15)
    for j in range(2):
        assert stats.kstest(x[:, j], stats.uniform(loc=-np.pi, scale=2 * np.pi).cdf).pvalue > P_MIN
    y = sample_cosine_surface(100, np.random.default_rng(0), low=0.0, high=1.0)
    assert y[:, :2].min() >= 0.0 and y[:, :2].max() <= 1.0


def test_random_orthonormal_columns():
    q = random_orthonormal(12, 5, np.random.default_rng(0))
    np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-12)


def test_random_orthonormal_is_haar():
    # For Haar-distributed Q in O(n), Q[0, 0]^2 ~ Beta(1/2, (n-1)/2); the uncorrected QR
    # sign convention breaks the symmetry of Q[0, 0] around 0.
    rng = np.random.default_rng(0)
    q00 = np.array([random_orthonormal(4, 4, rng)[0, 0] for _ in range(3000)])
    assert stats.kstest(q00**2, stats.beta(0.5, 1.5).cdf).pvalue > P_MIN
    assert abs(np.mean(q00 > 0) - 0.5) < 0.04


def test_embed_isometric_preserves_all_distances():
    x = sample_torus(300, 2, np.random.default_rng(0))
    y = embed_isometric(x, 50, np.random.default_rng(1))
    assert y.shape == (300, 50)
    np.testing.assert_allclose(pdist(y), pdist(x), atol=1e-12)
    # Every new coordinate mixes the old ones: no coordinate is constant.
    assert np.all(y.std(axis=0) > 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda rng: sample_hypersphere(0, 2, rng),
        lambda rng: sample_hypersphere(10, 0, rng),
        lambda rng: sample_linear_subspace(10, 5, 3, rng),
        lambda rng: sample_torus(10, 1.5, rng),
        lambda rng: sample_cosine_surface(10, rng, low=1.0, high=0.0),
        lambda rng: embed_isometric(np.zeros((4, 6)), 3, rng),
        lambda rng: embed_isometric(np.zeros(4), 3, rng),
    ],
)
def test_invalid_arguments_raise(call):
    with pytest.raises(ValueError):
        call(np.random.default_rng(0))
