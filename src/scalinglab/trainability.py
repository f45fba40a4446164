"""Trainability with depth: plain MLPs against residual MLPs, and the records of chapter 2.

A plain ReLU MLP of depth :math:`L` at He initialisation keeps the *mean* second moment of its
activations constant (:mod:`scalinglab.signal_propagation`), but at finite width the squared
length of a layer's output fluctuates by a random factor per layer, and the fluctuations
multiply: :math:`\\log \\|h_L\\|^2` has a variance growing like :math:`L/\\text{width}`
(Hanin & Rolnick 2018). With a badly scaled init (variance :math:`1/\\text{fan\\_in}`
with ReLU) the signal halves every layer and the gradients of early layers vanish.

A residual network adds each block's output to its input,

.. math::

    h_1 = W_1 x, \\qquad h_\\ell = h_{\\ell-1} + \\eta\\, W_\\ell\\, \\mathrm{relu}(h_{\\ell-1})
    \\ (\\ell = 2..L), \\qquad f(x) = W_{L+1}\\, \\mathrm{relu}(h_L) ,

and with the residual branches scaled by :math:`\\eta = 1/\\sqrt{L}` the second moment grows
only by :math:`(1 + \\eta^2)^{L-1} \\le e` whatever the depth (a He-initialised branch returns
the second moment of its input), and every layer has a direct path to the loss. Hanin &
Rolnick analyse such scaled residual branches and show they keep the mean length of the
activations from exploding with depth.

Source: B. Hanin, D. Rolnick, "How to Start Training: The Effect of Initialization and
Architecture", NeurIPS 2018 (arXiv:1803.01719).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from scalinglab.engine.ensemble import MLPEnsemble, train_ensemble
from scalinglab.models.mlp import MLP, check_positive_int, init_linear_


class ResidualMLP(nn.Module):
    """``in_dim -> width``, ``depth`` residual blocks ``h + eta * W relu(h)``, ``-> out_dim``.

    Every linear layer is He-initialised (biases zero); ``eta = 1/sqrt(depth)`` by default.
    It has ``depth + 1`` weight matrices between input and readout, the same count as
    ``MLP(in_dim, width, depth, out_dim)``.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        out_dim: int,
        seed: int = 0,
        branch_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.depth = check_positive_int("depth", depth)
        gen = torch.Generator().manual_seed(int(seed))
        self.inp = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(self.depth - 1))
        self.out = nn.Linear(width, out_dim)
        for layer in (self.inp, *self.blocks, self.out):
            init_linear_(layer, "kaiming", gen)
        self.branch_scale = (
            1.0 / math.sqrt(self.depth) if branch_scale is None else float(branch_scale)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + self.branch_scale * block(torch.relu(h))
        return self.out(torch.relu(h))


class ResidualEnsemble(MLPEnsemble):
    """``M`` :class:`ResidualMLP` networks evaluated in one batched pass.

    Member ``m`` starts with exactly the weights of ``ResidualMLP(in_dim, width, depth,
    out_dim, seed=seeds[m])`` (both draw their ``depth + 1`` He-initialised layers from one
    generator in the same order as :class:`~scalinglab.models.mlp.MLP`), so
    :func:`~scalinglab.engine.ensemble.train_ensemble` trains a learning-rate sweep of residual
    networks as one network, as it does for plain MLPs.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        out_dim: int,
        seeds: Sequence[int],
        branch_scale: float | None = None,
    ) -> None:
        super().__init__(in_dim, [width] * len(seeds), depth, out_dim, seeds, "relu", "kaiming")
        self.branch_scale = 1.0 / math.sqrt(depth) if branch_scale is None else float(branch_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 3) or x.shape[-1] != self.in_dim:
            raise ValueError(
                f"expected inputs (batch, {self.in_dim}) or (M, batch, {self.in_dim}), "
                f"got {tuple(x.shape)}"
            )
        w, b = self.weights, self.biases
        h = torch.matmul(x, w[0]) + b[0].unsqueeze(1)  # (M, batch, width) in both cases
        for layer in range(1, self.depth):
            branch = torch.baddbmm(b[layer].unsqueeze(1), torch.relu(h), w[layer])
            h = h + self.branch_scale * branch
        return torch.baddbmm(b[-1].unsqueeze(1), torch.relu(h), w[-1])


def depth_records(
    data: Mapping,
    depths: Sequence[int],
    architectures: Sequence[str] = ("kaiming", "xavier", "residual"),
    lrs: Sequence[float] = (0.02,),
    seeds: Sequence[int] = (0, 1, 2),
    width: int = 128,
    steps: int = 300,
    momentum: float = 0.9,
    batch_size: int | None = None,
    log_every: int = 25,
    device: str | None = "cpu",
) -> list[dict]:
    """SGD with momentum on ``data`` for every depth, architecture, learning rate and seed.

    ``architectures``: ``"kaiming"`` / ``"xavier"`` (plain ReLU MLPs with that init) or
    ``"residual"`` (:class:`ResidualMLP`, He init, branches scaled by ``1/sqrt(depth)``). All
    learning rates and seeds of one (depth, architecture) are trained together as one batched
    ensemble; member ``(lr, seed)`` starts from the weights of ``seed`` and draws its
    mini-batches (``batch_size``; ``None`` is full batch) from a schedule seeded with ``seed``,
    so the runs at different learning rates see the same data in the same order.

    Records: ``{architecture, depth, width, lr, seed, step, train_loss, test_loss,
    train_error, test_error}`` at every logged step (non-finite values become ``None``).
    """
    in_dim = int(np.asarray(data["x_train"]).shape[1])
    out_dim = int(max(np.max(data["y_train"]), np.max(data["y_test"]))) + 1
    members = [(float(lr), int(s)) for lr in lrs for s in seeds]
    member_lrs = [lr for lr, _ in members]
    member_seeds = [s for _, s in members]
    kw = dict(steps=steps, optimizer="sgd", momentum=momentum, batch_size=batch_size)
    records = []
    for depth in depths:
        for arch in architectures:
            if arch == "residual":
                ens = ResidualEnsemble(in_dim, width, depth, out_dim, member_seeds)
            else:
                ens = MLPEnsemble(
                    in_dim, [width] * len(members), depth, out_dim, member_seeds, "relu", arch
                )
            table = train_ensemble(
                ens, data, lr=member_lrs, log_every=log_every, device=device, **kw
            )
            for i, step in enumerate(table["step"]):
                for j, (lr, s) in enumerate(members):
                    rec = {"architecture": arch, "depth": int(depth), "width": int(width)}
                    rec.update(lr=lr, seed=s, step=int(step))
                    for k in ("train_loss", "test_loss", "train_error", "test_error"):
                        v = float(table[k][i][j])
                        rec[k] = v if np.isfinite(v) else None
                    records.append(rec)
    return records


def ntk_trace(net: nn.Module, x: torch.Tensor) -> float:
    r"""Mean over the inputs ``x`` of the trace of the neural tangent kernel at ``net``'s weights,
    :math:`\frac1n \sum_i \sum_k \|\nabla_\theta f_k(x_i)\|^2`.

    For the squared loss, gradient descent is stable only below a learning rate of
    :math:`2/\lambda_{\max}` of the kernel, so its size sets the scale of the usable learning
    rate. A plain He-initialised ReLU MLP's kernel is a sum of one term per layer of about the
    same size, so it grows like the depth; a residual network with branches scaled by
    :math:`1/\sqrt L` has :math:`L` terms of size :math:`1/L`, and its kernel does not grow.
    """
    params = [p for p in net.parameters() if p.requires_grad]
    total = 0.0
    for i in range(len(x)):
        out = net(x[i : i + 1])[0]
        for k in range(out.shape[0]):
            grads = torch.autograd.grad(out[k], params, retain_graph=k + 1 < out.shape[0])
            total += sum(float(g.pow(2).sum()) for g in grads)
    return total / len(x)


def top_hessian_eigenvalue(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, iters: int = 50, seed: int = 0
) -> float:
    r"""Largest eigenvalue :math:`\lambda_{\max}` of the Hessian of the mean cross-entropy
    of ``net`` on ``(x, y)`` with respect to all its parameters, by power iteration on
    Hessian-vector products (double back-propagation; the Hessian is never formed).

    Heavy-ball momentum :math:`\beta` on a quadratic with curvature :math:`\lambda` is stable
    only for :math:`\eta < 2(1 + \beta)/\lambda` (:math:`2/\lambda` without momentum), so
    :math:`2(1+\beta)/\lambda_{\max}` at initialisation is the largest learning rate that is
    stable at the first step. Power iteration converges to the eigenvalue of largest
    *magnitude*; at a ReLU network's initialisation that is the positive top one (the tests
    check it against the full Hessian of a small network).
    """
    params = [p for p in net.parameters() if p.requires_grad]
    loss = nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(int(seed))
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    lam = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((a * a).sum() for a in v))
        v = [a / norm for a in v]
        hv = torch.autograd.grad(grads, params, v, retain_graph=True)
        lam = float(sum((a * b).sum() for a, b in zip(hv, v, strict=True)))  # Rayleigh quotient
        v = [a.detach() for a in hv]
    return lam


def hessian_records(config: Mapping, data: Mapping) -> list[dict]:
    """:func:`top_hessian_eigenvalue` at initialisation for every depth, architecture
    (``"kaiming"``, ``"xavier"``: plain :class:`~scalinglab.models.mlp.MLP`; ``"residual"``:
    :class:`ResidualMLP`) and seed of ``config["hessian"]``, on the first ``n_examples``
    training examples of ``data``."""
    h = config["hessian"]
    n = int(h["n_examples"])
    x = torch.as_tensor(np.asarray(data["x_train"][:n]), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(data["y_train"][:n]), dtype=torch.long)
    out_dim = int(max(np.max(data["y_train"]), np.max(data["y_test"]))) + 1
    records = []
    for depth in h["depths"]:
        for arch in h["architectures"]:
            for seed in h["seeds"]:
                if arch == "residual":
                    net = ResidualMLP(x.shape[1], h["width"], depth, out_dim, seed=seed)
                else:
                    net = MLP(x.shape[1], h["width"], depth, out_dim, seed=seed, init=arch)
                lam = top_hessian_eigenvalue(net, x, y, h["iters"])
                records.append(
                    {
                        "architecture": arch,
                        "depth": int(depth),
                        "width": int(h["width"]),
                        "seed": int(seed),
                        "n_examples": n,
                        "iters": int(h["iters"]),
                        "top_eigenvalue": lam,
                    }
                )
    return records


def run_config(config: Mapping) -> list[dict]:
    """The records of a config: its data set, then each run's grid arguments over the
    shared ones (learning rates given as ``log2_lrs``) -- or, for a config with a
    ``"hessian"`` block, the top Hessian eigenvalues at initialisation
    (:func:`hessian_records`)."""
    from scalinglab.engine.sweep_config import load_dataset

    data = load_dataset(config["dataset"])
    if "hessian" in config:
        return hessian_records(config, data)
    records = []
    for run in config["runs"]:
        grid = {**config["grid"], **run}
        grid["lrs"] = [2.0**e for e in grid.pop("log2_lrs")]
        records += depth_records(data, **grid)
    return records


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m scalinglab.trainability CONFIG.json --out records.jsonl``."""
    from scalinglab.sweep_cli import records_main

    records_main(run_config, main.__doc__, argv)


if __name__ == "__main__":
    main()
