"""scalinglab.losses against PyTorch and SciPy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F

from scalinglab import losses

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(5,), (4, 7), (2, 3, 11)])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1000.0])
def test_softmax_and_log_softmax_match_torch(shape, scale):
    z = RNG.normal(size=shape) * scale
    zt = torch.tensor(z)
    np.testing.assert_allclose(losses.softmax(z), torch.softmax(zt, -1).numpy(), atol=1e-12)
    np.testing.assert_allclose(
        losses.log_softmax(z), torch.log_softmax(zt, -1).numpy(), rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(losses.logsumexp(z), scipy.special.logsumexp(z, axis=-1))


def test_softmax_is_shift_invariant_and_never_nan():
    z = np.array([[1000.0, 1000.0], [-1000.0, -1e308]])
    p = losses.softmax(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], [0.5, 0.5])
    np.testing.assert_allclose(losses.softmax(z[:1] + 7.5), p[:1])
    assert losses.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf


@pytest.mark.parametrize("scale", [1.0, 50.0, 2000.0])
def test_cross_entropy_and_gradient_match_torch(scale):
    z = RNG.normal(size=(16, 9)) * scale
    y = RNG.integers(0, 9, size=16)
    zt = torch.tensor(z, requires_grad=True)
    ref = F.cross_entropy(zt, torch.tensor(y))
    ref.backward()
    assert np.isclose(losses.cross_entropy(z, y), ref.item(), rtol=1e-10)
    np.testing.assert_allclose(losses.cross_entropy_grad(z, y), zt.grad.numpy(), atol=1e-12)
    per_example = F.cross_entropy(torch.tensor(z), torch.tensor(y), reduction="none").numpy()
    np.testing.assert_allclose(losses.cross_entropy(z, y, reduction="none"), per_example)
    assert np.isclose(losses.cross_entropy(z, y, reduction="sum"), per_example.sum())


def test_l1_loss_and_gradient_match_autograd():
    z = RNG.normal(size=(8, 5)) * 3
    y = RNG.integers(0, 5, size=8)
    zt = torch.tensor(z, requires_grad=True)
    ref = (1 - torch.softmax(zt, -1)[torch.arange(8), torch.tensor(y)]).mean()
    ref.backward()
    assert np.isclose(losses.l1_loss(z, y), ref.item())
    np.testing.assert_allclose(losses.l1_loss_grad(z, y), zt.grad.numpy(), atol=1e-12)
    # half the L1 distance to the one-hot target is 1 - p_y
    p = losses.softmax(z)
    onehot = np.eye(5)[y]
    np.testing.assert_allclose(
        losses.l1_loss(z, y, reduction="none"), 0.5 * np.abs(p - onehot).sum(-1)
    )


def test_l1_gradient_vanishes_for_confident_mistakes_but_cross_entropy_does_not():
    z = np.array([[20.0, 0.0]])  # confident in token 0; the truth is token 1
    y = np.array([1])
    assert np.abs(losses.l1_loss_grad(z, y)).max() < 1e-8
    np.testing.assert_allclose(losses.cross_entropy_grad(z, y), [[1.0, -1.0]], atol=1e-8)


def test_entropy_and_kl_match_scipy_and_decompose_cross_entropy():
    p = RNG.dirichlet(np.ones(6), size=4)
    q = RNG.dirichlet(np.ones(6), size=4)
    np.testing.assert_allclose(losses.entropy(p), scipy.stats.entropy(p, axis=-1))
    np.testing.assert_allclose(losses.entropy(p, base=2), scipy.stats.entropy(p, base=2, axis=-1))
    np.testing.assert_allclose(losses.kl_divergence(p, q), scipy.stats.entropy(p, q, axis=-1))
    cross = -(p * np.log(q)).sum(-1)
    np.testing.assert_allclose(cross, losses.entropy(p) + losses.kl_divergence(p, q))
    assert losses.entropy(np.array([1.0, 0.0])) == 0.0
    assert np.isclose(losses.entropy(np.full(8, 1 / 8), base=2), 3.0)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="integer"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="lie in"):
        losses.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="sum to 1"):
        losses.entropy(np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="reduction"):
        losses.cross_entropy(np.zeros((1, 2)), np.array([0]), reduction="avg")


def test_expected_l1_is_linear_and_prefers_the_corner_cross_entropy_prefers_the_truth():
    """The page's example p = (0.5, 0.25, 0.15, 0.1): expected L1 1 - p.q is 0.655 at
    q = p and 0.500 at the argmax corner; expected cross-entropy is H(p) = 1.208 at q = p
    and infinite at the corner. Random q never beat q = p under cross-entropy (Gibbs)."""
    p = np.array([0.5, 0.25, 0.15, 0.1])
    assert np.isclose(1 - p @ p, 0.655)
    assert np.isclose(1 - p @ np.eye(4)[0], 0.5)
    assert np.isclose(losses.entropy(p), 1.208, atol=5e-4)
    rng = np.random.default_rng(0)
    qs = rng.dirichlet(np.ones(4), size=1000)
    ce = -(np.log(qs) @ p)
    assert np.all(ce >= losses.entropy(p))
    assert np.all(1 - qs @ p >= 0.5 - 1e-12)  # no q beats the corner under L1
