"""Softmax, cross-entropy and entropy, written out so that students can read every line.

A language model outputs a vector of *logits* :math:`z \\in \\mathbb{R}^V`, one score per
token of a vocabulary of size :math:`V`. Softmax turns it into a distribution,

.. math:: p_i = \\operatorname{softmax}(z)_i = \\frac{e^{z_i}}{\\sum_j e^{z_j}},

and the model is trained to put probability on the token :math:`y` that actually came next.
Two candidate losses for one example:

- L1 loss on the one-hot target, :math:`\\tfrac12\\lVert p - e_y \\rVert_1 = 1 - p_y`;
- cross-entropy, :math:`-\\log p_y = \\operatorname{logsumexp}(z) - z_y`.

Their gradients with respect to the logits are :math:`-p_y (e_y - p)` for L1 and
:math:`p - e_y` for cross-entropy: the L1 gradient vanishes exactly when the model is
confidently wrong (:math:`p_y \\to 0`), the cross-entropy gradient does not.

All functions accept NumPy arrays (or anything ``np.asarray`` takes), work on the last
axis, and are numerically stable for logits of any magnitude.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "cross_entropy_grad",
    "l1_loss",
    "l1_loss_grad",
    "entropy",
    "kl_divergence",
]


def logsumexp(z, axis: int = -1) -> np.ndarray:
    """:math:`\\log \\sum_j e^{z_j}`, computed as :math:`m + \\log \\sum_j e^{z_j - m}` with
    :math:`m = \\max_j z_j` so that no exponential overflows (the largest term is
    :math:`e^0 = 1`) and the sum is never 0 (no ``log(0)``)."""
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # an all -inf row has logsumexp -inf, not nan
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer for such a row
        out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis)


def softmax(z, axis: int = -1) -> np.ndarray:
    """Stable softmax: subtracting the max leaves the result unchanged (the factor
    :math:`e^{-m}` cancels) and keeps every exponent :math:`\\le 0`."""
    z = np.asarray(z, dtype=np.float64)
    shifted = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z, axis: int = -1) -> np.ndarray:
    """:math:`\\log \\operatorname{softmax}(z)_i = z_i - \\operatorname{logsumexp}(z)`,
    finite even where ``softmax`` underflows to 0."""
    z = np.asarray(z, dtype=np.float64)
    return z - np.expand_dims(logsumexp(z, axis=axis), axis)


def _check_targets(z: np.ndarray, y) -> np.ndarray:
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"targets must be integer class indices, got dtype {y.dtype}")
    if z.shape[:-1] != y.shape:
        raise ValueError(f"logits of shape {z.shape} need targets of shape {z.shape[:-1]}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[-1]):
        raise ValueError(f"targets must lie in [0, {z.shape[-1]})")
    return y


def cross_entropy(z, y, reduction: str = "mean"):
    """Cross-entropy of integer targets ``y`` under logits ``z`` (in nats):
    :math:`\\ell = \\operatorname{logsumexp}(z) - z_y`.

    ``reduction`` is ``"mean"`` (like :func:`torch.nn.functional.cross_entropy`),
    ``"sum"`` or ``"none"`` (one loss per example).
    """
    z = np.asarray(z, dtype=np.float64)
    y = _check_targets(z, y)
    losses = logsumexp(z) - np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    return _reduce(losses, reduction)


def cross_entropy_grad(z, y) -> np.ndarray:
    """Gradient of the *mean* cross-entropy over a batch with respect to the logits:
    :math:`(\\operatorname{softmax}(z) - e_y) / B` for a batch of :math:`B` examples."""
    z = np.asarray(z, dtype=np.float64)
    y = _check_targets(z, y)
    g = softmax(z)
    np.put_along_axis(g, y[..., None], np.take_along_axis(g, y[..., None], -1) - 1.0, -1)
    return g / max(y.size, 1)


def l1_loss(z, y, reduction: str = "mean"):
    """L1 distance between the predicted distribution and the one-hot target, halved:
    :math:`\\tfrac12 \\lVert \\operatorname{softmax}(z) - e_y \\rVert_1 = 1 - p_y`."""
    z = np.asarray(z, dtype=np.float64)
    y = _check_targets(z, y)
    p_y = np.take_along_axis(softmax(z), y[..., None], axis=-1)[..., 0]
    return _reduce(1.0 - p_y, reduction)


def l1_loss_grad(z, y) -> np.ndarray:
    """Gradient of the mean L1 loss :math:`1 - p_y` with respect to the logits:
    :math:`-p_y (e_y - p) / B`. It vanishes as :math:`p_y \\to 0`: a confidently wrong
    model receives almost no signal."""
    z = np.asarray(z, dtype=np.float64)
    y = _check_targets(z, y)
    p = softmax(z)
    p_y = np.take_along_axis(p, y[..., None], axis=-1)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, y[..., None], 1.0, -1)
    return -p_y * (onehot - p) / max(y.size, 1)


def entropy(p, axis: int = -1, base: float | None = None) -> np.ndarray:
    """Shannon entropy :math:`H(p) = -\\sum_i p_i \\log p_i` with :math:`0 \\log 0 = 0`.

    In nats by default, in bits with ``base=2``. ``p`` must be a probability vector
    (non-negative, summing to 1 along ``axis``).
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any(p < 0) or not np.allclose(p.sum(axis=axis), 1.0, atol=1e-8):
        raise ValueError("p must be non-negative and sum to 1 along the axis")
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = terms.sum(axis=axis)
    return h / np.log(base) if base else h


def kl_divergence(p, q, axis: int = -1) -> np.ndarray:
    """:math:`\\mathrm{KL}(p\\,\\|\\,q) = \\sum_i p_i \\log(p_i / q_i) \\ge 0` (nats), so that the
    cross-entropy of data :math:`p` under a model :math:`q` splits as
    :math:`H(p, q) = H(p) + \\mathrm{KL}(p\\,\\|\\,q)`. Infinite where :math:`q_i = 0 < p_i`."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore"):
        ratio = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)) - np.log(q), 0.0)
    return np.sum(p * ratio, axis=axis)


def _reduce(losses: np.ndarray, reduction: str):
    if reduction == "mean":
        return float(np.mean(losses))
    if reduction == "sum":
        return float(np.sum(losses))
    if reduction == "none":
        return losses
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
