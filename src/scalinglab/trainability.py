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
from scalinglab.engine.training import train_classifier
from scalinglab.models.mlp import check_positive_int, init_linear_


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


def depth_records(
    data: Mapping,
    depths: Sequence[int],
    architectures: Sequence[str] = ("kaiming", "xavier"),
    seeds: Sequence[int] = (0, 1, 2),
    width: int = 128,
    steps: int = 300,
    lr: float = 0.02,
    momentum: float = 0.9,
    log_every: int = 25,
    device: str | None = "cpu",
) -> list[dict]:
    """Full-batch SGD with momentum on ``data`` for every depth, architecture and seed.

    ``architectures``: ``"kaiming"`` / ``"xavier"`` (plain ReLU MLPs with that init, all seeds
    trained together as one :class:`~scalinglab.engine.ensemble.MLPEnsemble`) or ``"residual"``
    (:class:`ResidualMLP`, one at a time). Records: ``{architecture, depth, width, seed, step,
    train_loss, test_loss, train_error, test_error}`` at every logged step (non-finite
    losses become ``None``).
    """
    in_dim = int(np.asarray(data["x_train"]).shape[1])
    out_dim = int(max(np.max(data["y_train"]), np.max(data["y_test"]))) + 1
    kw = dict(steps=steps, lr=lr, optimizer="sgd", momentum=momentum, log_every=log_every)
    records = []
    for depth in depths:
        for arch in architectures:
            if arch == "residual":
                hists = []
                for s in seeds:
                    net = ResidualMLP(in_dim, width, depth, out_dim, seed=s)
                    hists.append(train_classifier(net, data, seed=s, device=device, **kw))
                steps_logged = hists[0]["step"]
                table = {
                    k: np.array([h[k] for h in hists]).T
                    for k in ("train_loss", "test_loss", "train_error", "test_error")
                }
            else:
                ens = MLPEnsemble(in_dim, [width] * len(seeds), depth, out_dim, seeds, "relu", arch)
                table = train_ensemble(ens, data, device=device, **kw)
                steps_logged = table["step"]
            for i, step in enumerate(steps_logged):
                for j, s in enumerate(seeds):
                    rec = {"architecture": arch, "depth": int(depth), "width": int(width)}
                    rec.update(seed=int(s), step=int(step))
                    for k in ("train_loss", "test_loss", "train_error", "test_error"):
                        v = float(table[k][i][j])
                        rec[k] = v if np.isfinite(v) else None
                    records.append(rec)
    return records


def run_config(config: Mapping) -> list[dict]:
    """The depth records of a config: its data set, then each run's grid arguments over
    the shared ones."""
    from scalinglab.engine.sweep_config import load_dataset

    data = load_dataset(config["dataset"])
    records = []
    for run in config["runs"]:
        records += depth_records(data, **{**config["grid"], **run})
    return records


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m scalinglab.trainability CONFIG.json --out records.jsonl``."""
    from scalinglab.engine.sweep_config import records_main

    records_main(run_config, main.__doc__, argv)


if __name__ == "__main__":
    main()
