"""Learning-rate sweeps across width: the standard parametrisation (SP) against µP.

An MLP ``in_dim -> [width] * depth -> out_dim`` trained with Adam has three kinds of weights:
*input* weights (finite fan-in ``in_dim``, fan-out ``width``), *hidden* weights (``width x
width``) and *output* (readout) weights (fan-in ``width``, finite fan-out). Biases count with
the input weights (their "fan-in" is the constant 1). The Maximal Update Parametrisation for
Adam (proposed for SGD by Yang & Hu 2021, Tensor Programs IV, arXiv:2011.14522; derived
for Adam in Yang et al. 2022, Tensor Programs V, Table 3) scales them as

=================  ==========================  ==========================  ================
                   input weights & all biases  output weights              hidden weights
=================  ==========================  ==========================  ================
init. variance     1/fan_in                    1/fan_in^2  (SP: 1/fan_in)  1/fan_in
Adam LR            eta                         eta/fan_in  (SP: eta)       eta/fan_in  (SP: eta)
=================  ==========================  ==========================  ================

Only ratios between widths matter, so with a *base width* :math:`w_0` we use the Adam learning
rate :math:`\\eta\\, w_0 / w` for the hidden and output weights and :math:`\\eta` for the rest, and
initialise the readout at zero (the limit of variance :math:`1/\\text{fan\\_in}^2`, which Yang et al.
recommend as well). The hidden weights keep He's :math:`2/\\text{fan\\_in}` (a constant factor on
:math:`1/\\text{fan\\_in}` for ReLU). At :math:`w = w_0` the two parametrisations differ only in the
readout's initialisation.

Why SP's optimum moves: Adam's update of a weight is about :math:`\\eta` per entry whatever the
gradient's scale, and the updates of a matrix are correlated with its input, so a layer's
output moves by about :math:`\\eta \\cdot \\text{fan\\_in}`. With a fixed :math:`\\eta` the hidden and
readout layers change their outputs :math:`w` times faster in a network :math:`w` times wider,
and the largest stable :math:`\\eta` falls like :math:`1/w`. µP divides those layers' learning
rates by :math:`w/w_0` and the optimum stays put.

All learning rates of a width are trained at once: one :class:`~scalinglab.engine.ensemble.MLPEnsemble`
whose members differ only in their learning rate, updated by one
:class:`~scalinglab.engine.ensemble.StackedAdamW` per group of parameters (input and biases, hidden,
readout) with its per-member learning-rate vector.

Source: G. Yang, E. J. Hu, I. Babuschkin, S. Sidor, X. Liu, D. Farhi, N. Ryder, J. Pachocki,
W. Chen, J. Gao, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter
Transfer", arXiv:2203.03466 (2022), Table 3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from scalinglab.engine.ensemble import MLPEnsemble, StackedAdamW, StackedBatches
from scalinglab.engine.training import BatchSchedule, loss_and_error, prepare, take

PARAMETRIZATIONS = ("sp", "mup")


def layer_lr_multipliers(depth: int, width: int, base_width: int, parametrization: str) -> list:
    """Learning-rate multiplier of every linear layer's weights, input to output (biases: 1)."""
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {parametrization!r}; use {PARAMETRIZATIONS}")
    if parametrization == "sp":
        return [1.0] * (depth + 1)
    return [1.0] + [base_width / width] * depth


def _mup_ensemble(
    in_dim: int,
    out_dim: int,
    width: int,
    lrs: np.ndarray,
    parametrization: str,
    base_width: int,
    depth: int,
    seeds: Sequence[int],
    activation: str,
) -> tuple[MLPEnsemble, list[StackedAdamW]]:
    """One member per ``(lrs[m], seeds[m])``, initialised and optimised in ``parametrization``:
    the ensemble and one :class:`StackedAdamW` per group (input weights and biases, each
    hidden matrix, the readout) with its learning-rate multiplier."""
    mult = layer_lr_multipliers(depth, width, base_width, parametrization)
    m = len(lrs)
    ens = MLPEnsemble(in_dim, [width] * m, depth, out_dim, list(seeds), activation, "kaiming")
    if parametrization == "mup":
        with torch.no_grad():
            ens.weights[-1].zero_()
    groups = [[ens.weights[0], *ens.biases]] + [[w] for w in ens.weights[1:]]
    return ens, [StackedAdamW(g, lrs * k) for g, k in zip(groups, mult, strict=True)]


def _adam_steps(ens, opts, batches, x_tr, y_tr, steps: int) -> None:
    full = batches.schedules[0].full_batch
    for _ in range(steps):
        if full:
            xb, yb = x_tr, y_tr
        else:
            idx = batches.next()
            xb, yb = take(x_tr, idx), take(y_tr, idx)
        losses, _ = loss_and_error("classification", ens(xb), yb, with_error=False)
        for opt in opts:
            opt.zero_grad()
        losses.sum().backward()
        for opt in opts:
            opt.step()


def train_lr_sweep(
    data: Mapping,
    width: int,
    lrs: Sequence[float],
    parametrization: str = "sp",
    base_width: int = 32,
    depth: int = 2,
    steps: int = 300,
    batch_size: int | None = 128,
    seed: int = 0,
    activation: str = "relu",
    device: torch.device | str | None = None,
) -> dict[str, np.ndarray]:
    """Train one MLP per learning rate in ``lrs`` (same init and batches), all at once.

    Returns ``{"lr", "train_loss", "test_loss", "train_error", "test_error"}``, arrays over
    ``lrs`` after ``steps`` Adam steps. A diverged run has a non-finite loss.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    device, (x_tr, y_tr, x_te, y_te), _ = prepare(data, "classification", device)
    in_dim, out_dim = x_tr.shape[1], int(max(y_tr.max(), y_te.max())) + 1
    m = len(lrs)
    ens, opts = _mup_ensemble(
        in_dim, out_dim, width, lrs, parametrization, base_width, depth, [seed] * m, activation
    )
    ens.to(device)
    batches = StackedBatches([BatchSchedule(len(x_tr), batch_size, seed) for _ in range(m)])
    _adam_steps(ens, opts, batches, x_tr, y_tr, steps)
    out = {"lr": lrs}
    with torch.no_grad():
        for name, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
            loss, err = loss_and_error("classification", ens(x), y)
            out[f"{name}_loss"] = loss.cpu().numpy().astype(np.float64)
            out[f"{name}_error"] = err.cpu().numpy().astype(np.float64)
    return out


@torch.no_grad()
def _layer_outputs(ens: MLPEnsemble, x: torch.Tensor) -> list[torch.Tensor]:
    """Every linear layer's output (pre-activations, then the logits), ``(M, batch, width)``."""
    outs, h = [], x
    for layer, (w, b) in enumerate(zip(ens.weights, ens.biases, strict=True)):
        z = torch.matmul(h, w) + b.unsqueeze(1)
        outs.append(z)
        h = ens.act(z) if layer < ens.depth else z
    return outs


def coordinate_check(
    data: Mapping,
    widths: Sequence[int],
    parametrization: str,
    lr: float,
    steps: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    base_width: int = 32,
    depth: int = 2,
    batch_size: int | None = 128,
    n_probe: int = 256,
    activation: str = "relu",
) -> np.ndarray:
    r"""The *coordinate check* of µP (Yang et al. 2022, the ``mup`` package's diagnostic).

    For every width, train ``len(seeds)`` networks for ``steps`` Adam steps at learning rate
    ``lr`` and measure how far each layer's output moved on ``n_probe`` fixed training
    inputs: the root mean square over units and inputs of :math:`z_\ell(t) - z_\ell(0)`.
    In a parametrisation where features learn at a width-independent rate (µP) it is flat in
    width; in SP with Adam the hidden and readout layers' changes grow like the width.

    Returns an array ``(len(widths), len(seeds), depth + 1)``: layer 0 is the input layer,
    the last is the readout.
    """
    device, (x_tr, y_tr, _, y_te), _ = prepare(data, "classification", "cpu")
    in_dim, out_dim = x_tr.shape[1], int(max(y_tr.max(), y_te.max())) + 1
    probe = x_tr[:n_probe]
    out = np.zeros((len(widths), len(seeds), depth + 1))
    lrs = np.full(len(seeds), float(lr))
    for i, width in enumerate(widths):
        ens, opts = _mup_ensemble(
            in_dim, out_dim, width, lrs, parametrization, base_width, depth, seeds, activation
        )
        before = _layer_outputs(ens, probe)
        batches = StackedBatches([BatchSchedule(len(x_tr), batch_size, s) for s in seeds])
        _adam_steps(ens, opts, batches, x_tr, y_tr, steps)
        after = _layer_outputs(ens, probe)
        for k, (z0, z1) in enumerate(zip(before, after, strict=True)):
            out[i, :, k] = (z1 - z0).pow(2).mean(dim=(1, 2)).sqrt().numpy()
    return out


def sweep_records(
    data: Mapping,
    widths: Sequence[int],
    lrs: Sequence[float],
    parametrizations: Sequence[str] = PARAMETRIZATIONS,
    seeds: Sequence[int] = (0,),
    **kwargs,
) -> list[dict]:
    """Flat records ``{parametrization, width, seed, lr, steps, train_loss, ...}`` of a grid."""
    records = []
    for p in parametrizations:
        for w in widths:
            for s in seeds:
                res = train_lr_sweep(data, w, lrs, p, seed=s, **kwargs)
                for k, lr in enumerate(res["lr"]):
                    rec = {"parametrization": p, "width": int(w), "seed": int(s), "lr": float(lr)}
                    rec["steps"] = int(kwargs.get("steps", 300))
                    for key in ("train_loss", "test_loss", "train_error", "test_error"):
                        v = float(res[key][k])
                        rec[key] = v if np.isfinite(v) else None  # JSON has no NaN
                    records.append(rec)
    return records


def optimal_lr(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The learning rate with the lowest loss; diverged runs (NaN/inf/None) never win."""
    losses = np.array([np.inf if v is None else v for v in losses], dtype=np.float64)
    losses[~np.isfinite(losses)] = np.inf
    if not np.isfinite(losses).any():
        raise ValueError("every run diverged")
    return float(np.asarray(lrs, dtype=np.float64)[np.argmin(losses)])


def optimum_shift_octaves(table: Mapping[int, tuple[Sequence[float], Sequence[float]]]) -> float:
    """:math:`\\log_2` of (optimal LR at the largest width / optimal LR at the smallest).

    ``table`` maps a width to ``(lrs, losses)``. Negative: the optimum moves to smaller
    learning rates as the network widens.
    """
    w_min, w_max = min(table), max(table)
    return float(np.log2(optimal_lr(*table[w_max]) / optimal_lr(*table[w_min])))


def run_config(config: Mapping) -> list[dict]:
    """Records of the sweep a config describes (see ``records/ch02_mup_sweep.config.json``)."""
    from scalinglab.engine.sweep_config import load_dataset

    data = load_dataset(config["dataset"])
    lrs = [2.0**k for k in config["log2_lrs"]]
    return sweep_records(
        data,
        config["widths"],
        lrs,
        config.get("parametrizations", PARAMETRIZATIONS),
        config.get("seeds", (0,)),
        **config.get("training", {}),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m scalinglab.mup CONFIG.json --out records.jsonl``."""
    from scalinglab.sweep_cli import records_main

    records_main(run_config, main.__doc__, argv)


if __name__ == "__main__":
    main()
