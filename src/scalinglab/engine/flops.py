"""Counting the floating-point operations (FLOPs) of training, the "C" of scaling laws.

A multiply-add counts as 2 FLOPs. Only matrix multiplications are counted: everything
else (biases, activations, the loss, the optimizer) costs :math:`O(\\text{width})` per example
rather than :math:`O(\\text{width}^2)`, and the convention of Kaplan et al. (2020) and of
:class:`torch.utils.flop_counter.FlopCounterMode` is to ignore it.

MLP, exactly
------------
A linear layer :math:`\\mathbb{R}^{n_\\text{in}} \\to \\mathbb{R}^{n_\\text{out}}` applied to
one example costs :math:`2 n_\\text{in} n_\\text{out}` FLOPs forward. Backward costs the same
twice: once for the weight gradient :math:`\\partial L/\\partial W = \\delta\\, h^\\top` and once
for the gradient sent to the layer below, :math:`W^\\top \\delta`. The first layer needs no
input gradient (the data are not trained), so with :math:`P_W = \\sum_\\ell n_\\text{in}^{(\\ell)}
n_\\text{out}^{(\\ell)}` weights

.. math::

    C_\\text{forward} = 2 P_W, \\qquad
    C_\\text{train step} = 6 P_W - 2\\, d_\\text{in}\\, n_\\text{out}^{(1)}
    \\quad\\text{per example,}

which is the familiar "training costs about 3x the forward pass".

Transformer, the Kaplan approximation
-------------------------------------
With :math:`N` non-embedding parameters and :math:`D` training tokens,
:math:`C \\approx 6 N D` (Kaplan et al. 2020, Table 1; Hoffmann et al. 2022 use the same).
The attention scores add :math:`2 n_\\text{layer} n_\\text{ctx} d_\\text{model}` per token
forward, negligible when :math:`d_\\text{model} \\gg n_\\text{ctx}/12`;
:func:`transformer_forward_flops_per_token` includes it.

Sources: J. Kaplan et al., "Scaling Laws for Neural Language Models", arXiv:2001.08361
(2020), Sec. 2.1; J. Hoffmann et al., "Training Compute-Optimal Large Language Models",
arXiv:2203.15556 (2022), Appendix F.
"""

from __future__ import annotations

from scalinglab.models.mlp import check_positive_int, mlp_layer_shapes


def mlp_forward_flops(in_dim: int, width: int, depth: int, out_dim: int) -> int:
    """Matmul FLOPs of one forward pass of one example: :math:`2 \\sum_\\ell n_\\text{in} n_\\text{out}`."""
    _check_mlp(in_dim, width, depth, out_dim)
    return 2 * sum(i * o for i, o in mlp_layer_shapes(in_dim, width, depth, out_dim))


def mlp_train_flops_per_example(in_dim: int, width: int, depth: int, out_dim: int) -> int:
    """Matmul FLOPs of forward + backward for one example (no input gradient at layer 1)."""
    shapes = mlp_layer_shapes(in_dim, width, depth, out_dim)
    forward = mlp_forward_flops(in_dim, width, depth, out_dim)
    weight_grads = forward
    input_grads = forward - 2 * shapes[0][0] * shapes[0][1]
    return forward + weight_grads + input_grads


def mlp_train_flops(in_dim: int, width: int, depth: int, out_dim: int, n_examples: int) -> int:
    """Training FLOPs after ``n_examples`` example-gradients (= steps x batch size)."""
    if n_examples < 0:
        raise ValueError(f"n_examples must be >= 0, got {n_examples}")
    return mlp_train_flops_per_example(in_dim, width, depth, out_dim) * int(n_examples)


def transformer_forward_flops_per_token(
    n_params_non_embedding: int, n_layers: int, context_length: int, d_model: int
) -> int:
    """Kaplan et al. (2020), Table 1: :math:`2N + 2 n_\\text{layer} n_\\text{ctx} d_\\text{model}`."""
    return 2 * int(n_params_non_embedding) + 2 * n_layers * context_length * d_model


def transformer_train_flops(n_params_non_embedding: int, n_tokens: int) -> int:
    """The standard estimate :math:`C = 6 N D` for training on ``n_tokens`` tokens."""
    if n_params_non_embedding < 0 or n_tokens < 0:
        raise ValueError("n_params_non_embedding and n_tokens must be >= 0")
    return 6 * int(n_params_non_embedding) * int(n_tokens)


def _check_mlp(in_dim: int, width: int, depth: int, out_dim: int) -> None:
    for name, value in (("in_dim", in_dim), ("width", width), ("depth", depth)):
        check_positive_int(name, value)
    check_positive_int("out_dim", out_dim)
