"""Backpropagation by hand for a two-layer MLP, and what a backward pass costs.

The network and its loss, for a batch :math:`X \\in \\mathbb{R}^{n \\times d}` with integer
labels :math:`y`:

.. math::

    Z_1 = X W_1^\\top + b_1,\\quad H = \\mathrm{relu}(Z_1),\\quad Z_2 = H W_2^\\top + b_2,\\quad
    L = -\\frac1n \\sum_i \\log \\operatorname{softmax}(Z_2)_{i, y_i}.

The chain rule, one matrix product per arrow (shapes in brackets, :math:`h` hidden units,
:math:`k` classes, :math:`E` the one-hot labels):

.. math::

    G_2 = \\partial L/\\partial Z_2 = (\\operatorname{softmax}(Z_2) - E)/n \\ [n\\times k],\\qquad
    \\partial L/\\partial W_2 = G_2^\\top H \\ [k \\times h],\\qquad
    \\partial L/\\partial b_2 = \\textstyle\\sum_i G_{2,i},

    G_1 = (G_2 W_2) \\odot \\mathbb{1}[Z_1 > 0] \\ [n\\times h],\\qquad
    \\partial L/\\partial W_1 = G_1^\\top X \\ [h \\times d],\\qquad
    \\partial L/\\partial b_1 = \\textstyle\\sum_i G_{1,i}.

Every forward matrix product :math:`Z = H W^\\top` (:math:`2 n\\, n_\\text{in} n_\\text{out}` FLOPs)
has two backward ones of the same size, :math:`G^\\top H` for the weights and :math:`G W` for the
layer below (not needed at the first layer), so backward costs about twice the forward pass
and a training step about three times: :math:`\\approx 6` FLOPs per parameter per example, the
:math:`C \\approx 6ND` of chapter 4. :func:`measured_flops` checks it with PyTorch's own
counter, :class:`torch.utils.flop_counter.FlopCounterMode`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def two_layer_loss_and_grads(
    params: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    """Cross-entropy of the two-layer ReLU MLP and its gradients, by hand (NumPy, float64).

    ``params`` has ``W1 (h, d), b1 (h,), W2 (k, h), b2 (k,)`` (PyTorch's ``nn.Linear`` layout).
    """
    w1, b1, w2, b2 = (np.asarray(params[k], dtype=np.float64) for k in ("W1", "b1", "W2", "b2"))
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    n = len(x)
    z1 = x @ w1.T + b1
    h = np.maximum(z1, 0.0)
    z2 = h @ w2.T + b2
    p = _softmax(z2)
    loss = float(-np.mean(np.log(p[np.arange(n), y])))
    g2 = p.copy()
    g2[np.arange(n), y] -= 1.0
    g2 /= n
    g1 = (g2 @ w2) * (z1 > 0)
    return loss, {"W1": g1.T @ x, "b1": g1.sum(0), "W2": g2.T @ h, "b2": g2.sum(0)}


def autograd_loss_and_grads(
    params: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    """The same loss and gradients from PyTorch's autograd (float64): the reference."""
    t = {
        k: torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=True)
        for k, v in params.items()
    }
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    z2 = torch.relu(xt @ t["W1"].T + t["b1"]) @ t["W2"].T + t["b2"]
    loss = F.cross_entropy(z2, torch.as_tensor(np.asarray(y), dtype=torch.long))
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in t.items()}


def measured_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, int]:
    """FLOPs of one forward and one backward pass of ``model`` on a batch (cross-entropy loss),
    counted by :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products only)."""
    for p in model.parameters():
        p.grad = None
    with FlopCounterMode(display=False) as fwd:
        loss = F.cross_entropy(model(x), y)
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    return {"forward": int(fwd.get_total_flops()), "backward": int(bwd.get_total_flops())}
