"""A plain multilayer perceptron with a configurable depth, width, activation and init.

The network maps :math:`x \\in \\mathbb{R}^{d_\\text{in}}` through ``depth`` hidden layers of
``width`` units each and a linear read-out:

.. math::

    h_0 = x, \\qquad h_\\ell = \\phi(W_\\ell h_{\\ell-1} + b_\\ell)\\ (\\ell = 1..L), \\qquad
    f(x) = W_{L+1} h_L + b_{L+1}.

So ``depth`` counts *hidden* layers (``depth=1`` is the classic one-hidden-layer net of the
double-descent experiments) and the model has ``depth + 1`` linear layers.

Initialisation schemes (weights :math:`W \\in \\mathbb{R}^{n_\\text{out} \\times n_\\text{in}}`,
biases always start at zero except for ``"torch"``):

- ``"kaiming"`` (He et al. 2015): :math:`W_{ij} \\sim \\mathcal{N}(0, 2/n_\\text{in})`. With ReLU
  half the units are off, so the factor 2 keeps :math:`\\mathbb{E}\\,\\|h_\\ell\\|^2` constant
  with depth.
- ``"xavier"`` (Glorot & Bengio 2010): :math:`W_{ij} \\sim \\mathcal{N}(0, 2/(n_\\text{in} +
  n_\\text{out}))`, the compromise that keeps forward *and* backward variances stable for
  tanh-like activations.
- ``"normal"``: :math:`W_{ij} \\sim \\mathcal{N}(0, \\sigma^2)` with a fixed ``init_std``
  :math:`\\sigma` (1 by default) -- the naive choice whose activations explode or vanish with
  depth (chapter 2).
- ``"torch"``: PyTorch's default for :class:`torch.nn.Linear` (uniform with bound
  :math:`1/\\sqrt{n_\\text{in}}` for weights and biases).

A ``seed`` makes the initial weights a pure function of the seed (a private
:class:`torch.Generator`, no global state touched), which is what lets
:class:`scalinglab.engine.ensemble.MLPEnsemble` rebuild exactly the same networks.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
from torch import nn

#: Activations by name. Every one maps 0 to 0 except ``sigmoid`` (the ensemble masks
#: padded units explicitly, so this is not needed for correctness, only convenient).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}

INITS = ("kaiming", "xavier", "normal", "torch")


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` or raise a ``ValueError`` that names the argument."""
    try:
        as_int = operator.index(value)  # accepts Python and NumPy integers, rejects floats
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if isinstance(value, bool) or as_int < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return as_int


def get_activation(name: str) -> nn.Module:
    """Instantiate the activation called ``name`` (see :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def init_linear_(
    layer: nn.Linear,
    init: str = "kaiming",
    generator: torch.Generator | None = None,
    init_std: float = 1.0,
) -> None:
    """Initialise ``layer`` in place with the scheme ``init`` (see the module docstring)."""
    fan_out, fan_in = layer.weight.shape
    with torch.no_grad():
        if init == "kaiming":
            layer.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
            layer.bias.zero_()
        elif init == "xavier":
            layer.weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
            layer.bias.zero_()
        elif init == "normal":
            layer.weight.normal_(0.0, float(init_std), generator=generator)
            layer.bias.zero_()
        elif init == "torch":
            bound = 1.0 / math.sqrt(fan_in)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
        else:
            raise ValueError(f"unknown init {init!r}; choose one of {INITS}")


def mlp_layer_shapes(in_dim: int, width: int, depth: int, out_dim: int) -> list[tuple[int, int]]:
    """``(fan_in, fan_out)`` of every linear layer of an MLP, input to output."""
    dims = [in_dim] + [width] * depth + [out_dim]
    return list(zip(dims[:-1], dims[1:], strict=True))


def mlp_param_count(in_dim: int, width: int, depth: int, out_dim: int) -> int:
    """Number of trainable parameters: :math:`\\sum_\\ell (n_\\text{in} + 1) n_\\text{out}`."""
    return sum((i + 1) * o for i, o in mlp_layer_shapes(in_dim, width, depth, out_dim))


class MLP(nn.Module):
    """Fully connected network ``in_dim -> [width] * depth -> out_dim``.

    Parameters
    ----------
    in_dim, width, depth, out_dim:
        Input size, hidden width, number of hidden layers (``depth >= 1``) and output size.
    activation:
        A name from :data:`ACTIVATIONS`.
    init:
        One of ``"kaiming"``, ``"xavier"``, ``"normal"``, ``"torch"``.
    seed:
        If given, the initial weights come from a private generator seeded with it.
        Otherwise PyTorch's global generator is used (seed it with
        :func:`scalinglab.engine.seeding.seed_everything`).
    init_std:
        Standard deviation for ``init="normal"``.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        out_dim: int,
        activation: str = "relu",
        init: str = "kaiming",
        seed: int | None = None,
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        self.width = check_positive_int("width", width)
        self.depth = check_positive_int("depth", depth)
        self.out_dim = check_positive_int("out_dim", out_dim)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
        get_activation(activation)  # validate early, with a clear message
        self.activation = activation
        self.init = init

        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        layers: list[nn.Module] = []
        for k, (fan_in, fan_out) in enumerate(
            mlp_layer_shapes(self.in_dim, self.width, self.depth, self.out_dim)
        ):
            linear = nn.Linear(fan_in, fan_out)
            init_linear_(linear, init, generator, init_std)
            layers.append(linear)
            if k < self.depth:
                layers.append(get_activation(activation))
        self.net = nn.Sequential(*layers)

    @property
    def linears(self) -> list[nn.Linear]:
        """The ``depth + 1`` linear layers, input to output."""
        return [m for m in self.net if isinstance(m, nn.Linear)]

    @property
    def n_params(self) -> int:
        """Number of trainable parameters (weights and biases)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_dim) -> (batch, out_dim)``."""
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected inputs with last dimension {self.in_dim}, got {x.shape}")
        return self.net(x)

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-activation hidden representations ``[h_1, ..., h_L]`` (for probes and plots)."""
        out = []
        for module in self.net:
            x = module(x)
            if not isinstance(module, nn.Linear):
                out.append(x)
        return out
