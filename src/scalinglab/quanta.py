"""Many skills (chapter 8): the quantization model of neural scaling.

The model (Michaud, Liu, Girit & Tegmark 2023; the data side is Hutter 2021)
--------------------------------------------------------------------------
A task is made of discrete skills, *quanta*, used with frequencies
:math:`p_k \\propto k^{-(\\alpha+1)}`. A model either has learned quantum :math:`k` (loss 0 on
its examples) or not (loss :math:`b`, here :math:`b = \\ln 2`, chance on a binary label). If
the model has learned exactly the :math:`n` most frequent quanta, its expected loss is

.. math::

    L(n) = b \\sum_{k > n} p_k \\;\\approx\\; \\frac{b}{\\alpha\\,\\zeta(\\alpha+1)}\\, n^{-\\alpha}
    \\qquad (n \\ll n_\\text{tasks}).

- *Parameters*: if every quantum costs about the same number of parameters,
  :math:`n \\propto N` and :math:`L(N) \\propto N^{-\\alpha}`.
- *Data*: quantum :math:`k` is learned once its examples number about :math:`\\tau`, i.e.
  when :math:`p_k D \\gtrsim \\tau`: :math:`n \\propto D^{1/(\\alpha+1)}` and
  :math:`L(D) \\propto D^{-\\alpha/(\\alpha+1)}`.
- *Compute*: :math:`C \\propto N D \\propto n \\cdot n^{\\alpha+1}` at the optimum, so
  :math:`L(C) \\propto C^{-\\alpha/(\\alpha+2)}`.

With a finite number of subtasks the sum stops at :math:`n_\\text{tasks}` and bends the curve
down; :func:`tail_loss` is the exact finite sum, which is what the measurements are compared
with.

Experiments
-----------
:func:`train_quanta` trains one-hidden-layer ReLU MLPs on
:class:`~scalinglab.data.sparse_parity.MultitaskSparseParity` in the *online* regime (a fresh
batch at every step, nothing is seen twice), many at once with
:class:`~scalinglab.engine.ensemble.MLPEnsemble` (each member its own batch stream), and logs
every subtask's test loss and accuracy on a stratified test set at the logged steps. With
a constant learning rate, the run with a data budget of :math:`D = B \\cdot s` examples is
exactly the first :math:`s` steps of a longer run, so logging over steps *is* the data sweep.

Sources: E. J. Michaud, Z. Liu, U. Girit, M. Tegmark, "The Quantization Model of Neural
Scaling", NeurIPS 2023 (arXiv:2303.13506; code ejmichaud/quantization-model);
M. Hutter, "Learning Curve Theory", arXiv:2102.04074 (2021).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scalinglab.data.sparse_parity import MultitaskSparseParity, zipf_frequencies
from scalinglab.engine.ensemble import MLPEnsemble, StackedAdamW, StackedSGD
from scalinglab.engine.training import lr_factor
from scalinglab.fitting import fit_loglog_line

RECORDS = Path(__file__).parent / "records"
LN2 = math.log(2.0)

# --------------------------------------------------------------------------- theory


def tail_loss(probs: np.ndarray, n_learned, unlearned_loss: float = LN2) -> np.ndarray:
    """Expected loss of a model that has learned the ``n_learned`` most frequent quanta:
    :math:`b \\sum_{k > n} p_k` (``probs`` sorted by decreasing frequency). Vectorised in
    ``n_learned``; a fractional ``n`` interpolates linearly between integers."""
    probs = np.asarray(probs, dtype=np.float64)
    tail = np.concatenate([np.cumsum(probs[::-1])[::-1], [0.0]])  # tail[n] = sum_{k>n} p_k
    n = np.clip(np.asarray(n_learned, dtype=np.float64), 0, len(probs))
    return unlearned_loss * np.interp(n, np.arange(len(probs) + 1), tail)


def parameter_exponent(alpha: float) -> float:
    """:math:`L \\propto N^{-\\alpha}`: one quantum per fixed number of parameters."""
    return float(alpha)


def data_exponent(alpha: float) -> float:
    """:math:`L \\propto D^{-\\alpha/(\\alpha+1)}` (Hutter 2021; Michaud et al. 2023)."""
    return float(alpha) / (float(alpha) + 1.0)


def compute_exponent(alpha: float) -> float:
    """:math:`L \\propto C^{-\\alpha/(\\alpha+2)}` with :math:`N \\propto n`,
    :math:`D \\propto n^{\\alpha+1}` and :math:`C \\propto N D`."""
    return float(alpha) / (float(alpha) + 2.0)


def data_to_learn(probs: np.ndarray, tau: float) -> np.ndarray:
    """Examples :math:`D_k = \\tau / p_k` after which quantum :math:`k` is learned."""
    return float(tau) / np.asarray(probs, dtype=np.float64)


def n_learned_from_data(probs: np.ndarray, D, tau: float) -> np.ndarray:
    """How many quanta have :math:`p_k D \\ge \\tau`: the ones learned with ``D`` examples."""
    D = np.asarray(D, dtype=np.float64)
    return (np.asarray(probs)[None, :] * D.reshape(-1, 1) >= tau).sum(1).reshape(D.shape)


def loglog_slope(x, y) -> float:
    """The exponent :math:`a` of the least-squares line :math:`\\log y = c - a \\log x`."""
    return float(fit_loglog_line(x, y).alpha)


def theory_slope(probs: np.ndarray, n_learned, unlearned_loss: float = LN2) -> float:
    """Exponent of the exact finite sum :func:`tail_loss` against ``n`` over the given
    learned counts (what a measured :math:`L \\propto n^{-a}` should show over that range)."""
    n = np.asarray(n_learned, dtype=np.float64)
    return loglog_slope(n, tail_loss(probs, n, unlearned_loss))


def loss_matched_n(probs: np.ndarray, loss, unlearned_loss: float = LN2) -> np.ndarray:
    """The (fractional) number of quanta :math:`n` at which the step model's loss equals
    ``loss``: the inverse of :func:`tail_loss` (piecewise linear and decreasing in
    :math:`n`, so inverted exactly by interpolation). No threshold for "learned" enters: it
    matches the model's *level* to a measured loss at one point."""
    probs = np.asarray(probs, dtype=np.float64)
    ns = np.arange(len(probs) + 1, dtype=np.float64)
    levels = tail_loss(probs, ns, unlearned_loss)  # decreasing from b to 0
    return np.interp(np.asarray(loss, dtype=np.float64), levels[::-1], ns[::-1])


# --------------------------------------------------------------------------- measuring


def learned(task_loss: np.ndarray, threshold: float = 0.1 * LN2) -> np.ndarray:
    """Which subtasks are learned: test loss below ``threshold`` (default a tenth of chance)."""
    return np.asarray(task_loss) < threshold


def mean_loss(task_loss: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The expected loss under the Zipf mixture, :math:`\\sum_k p_k L_k` (last axis = tasks)."""
    return np.asarray(task_loss, dtype=np.float64) @ np.asarray(probs, dtype=np.float64)


def first_crossing(xs: Sequence[float], values: np.ndarray, threshold: float) -> np.ndarray:
    """For every column of ``values`` (rows follow ``xs``, increasing), the first ``x`` from
    which the value stays below ``threshold`` until the end; ``nan`` if it never does."""
    values = np.asarray(values, dtype=np.float64)
    below = values < threshold
    # stays below from row i on: reverse cumulative AND
    stays = np.flip(np.cumprod(np.flip(below, 0), 0), 0).astype(bool)
    out = np.full(values.shape[1], np.nan)
    for j in range(values.shape[1]):
        rows = np.flatnonzero(stays[:, j])
        if len(rows):
            out[j] = xs[rows[0]]
    return out


# --------------------------------------------------------------------------- training


def _task_metrics(logits: torch.Tensor, y: torch.Tensor, n_tasks: int, per_task: int):
    """Per-member, per-subtask mean cross-entropy and accuracy, ``(M, n_tasks)`` each
    (the stratified test set lists ``per_task`` examples of each subtask in task order)."""
    m = logits.shape[0]
    ce = F.cross_entropy(logits.reshape(-1, 2).float(), y.repeat(m), reduction="none")
    acc = (logits.argmax(-1) == y).float()
    shape = (m, n_tasks, per_task)
    return ce.view(shape).mean(-1), acc.view(shape).mean(-1)


def train_quanta(
    alpha: float,
    widths: Sequence[int] | int,
    seeds: Sequence[int],
    lrs: Sequence[float] | float = 1e-2,
    n_tasks: int = 100,
    n_bits: int = 16,
    k_sparse: int = 2,
    subset_seed: int = 0,
    steps: int = 2000,
    batch_size: int = 512,
    log_at: Sequence[int] = (),
    per_task_test: int = 256,
    test_seed: int = 12345,
    data_seed: int = 0,
    optimizer: str = "adamw",
    momentum: float = 0.9,
    subset_bits: int | None = None,
    schedule: str = "constant",
    final_ratio: float = 0.1,
) -> list[dict]:
    """Train one ensemble of MLPs ``n_tasks + n_bits -> width -> 2`` (one hidden ReLU
    layer, the paper's ``depth=2``) on fresh batches: one member per width and ``(seed, lr)``
    pair (``lrs`` a scalar or one per seed).

    ``optimizer="adamw"`` (the paper's, no weight decay) or ``"sgd"`` (heavy-ball momentum
    ``momentum``). The two differ in how a subtask's examples move the weights that only it
    uses (its control bit's row of the first layer): the SGD gradient on them is
    proportional to the subtask's frequency :math:`p_k`, so with SGD a subtask needs a fixed
    number of its own examples, :math:`D_k \\propto 1/p_k`, the quantization model's
    assumption. Adam divides each weight's update by the root mean square of its recent
    gradients, which takes part of that factor away: for a weight that only subtask
    :math:`k` uses, the step is about the learning rate whatever :math:`p_k` while the
    subtask is in every batch (:math:`B p_k \\gg 1`), and grows like
    :math:`\\sqrt{B p_k}` when it is in a fraction :math:`B p_k` of them.

    Returns one record per member: its settings, ``n_params``, ``step``, ``examples``
    (:math:`B \\cdot s` seen), and ``task_loss`` / ``task_acc`` of shape
    ``(n_logged, n_tasks)``, on a stratified test set of ``per_task_test`` fresh examples per
    subtask (the same set for every member). ``subset_bits`` draws the subtasks' bits from
    the first ``subset_bits`` of the ``n_bits`` only (see
    :class:`~scalinglab.data.sparse_parity.MultitaskSparseParity`); recorded when set.

    ``schedule``: ``"constant"`` (then a run of ``steps`` is a data sweep, logged as it goes)
    or ``"cosine"`` (:func:`~scalinglab.engine.training.lr_factor`: a cosine from the peak
    rate down to ``final_ratio`` of it at the last step, no warmup). A cosine run is one budget:
    its logged steps before the end are not the end of a shorter run. The width sweep uses
    it because at a constant rate Adam's noise keeps the loss up (a lower rate is slower but
    ends lower); the decay takes that noise away, so the end state is set by the width.
    Recorded when not constant.
    """
    lr_factor(0, steps, schedule, 0, final_ratio)  # check the schedule's arguments
    widths = [int(widths)] if np.ndim(widths) == 0 else [int(w) for w in widths]
    lrs = [float(lrs)] * len(seeds) if np.ndim(lrs) == 0 else [float(v) for v in lrs]
    if len(lrs) != len(seeds):
        raise ValueError("lrs must be a scalar or one learning rate per seed")
    members = [(w, int(s), lr) for w in widths for s, lr in zip(seeds, lrs, strict=True)]
    seeds = [m[1] for m in members]
    src = MultitaskSparseParity(n_tasks, n_bits, k_sparse, alpha, subset_seed, subset_bits)
    x_te, y_te, _ = src.stratified(per_task_test, test_seed)
    ens = MLPEnsemble(src.in_dim, [m[0] for m in members], 1, 2, seeds)
    if optimizer == "adamw":
        opt = StackedAdamW(list(ens.parameters()), [m[2] for m in members])
    elif optimizer == "sgd":
        opt = StackedSGD(list(ens.parameters()), [m[2] for m in members], momentum=momentum)
    else:
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
    # one stream of fresh batches for the ensemble, (M, B) examples per step: every member
    # sees its own examples (drawing them in one call keeps the step cheap)
    gen = torch.Generator().manual_seed(int(data_seed))
    log = sorted({0, int(steps), *(int(s) for s in log_at if 0 <= s <= steps)})
    hist_loss, hist_acc = [], []
    for step in range(steps + 1):
        if step in log:
            with torch.no_grad():
                tl, ta = _task_metrics(ens(x_te), y_te, n_tasks, per_task_test)
            hist_loss.append(tl.numpy())
            hist_acc.append(ta.numpy())
        if step == steps:
            break
        xb, yb, _ = src.sample((len(seeds), batch_size), gen)
        out = ens(xb)
        loss = F.cross_entropy(out.reshape(-1, 2), yb.reshape(-1), reduction="none")
        opt.zero_grad()
        loss.view(len(seeds), batch_size).mean(1).sum().backward()  # independent members
        if schedule != "constant":
            opt.set_scale(lr_factor(step, steps, schedule, 0, final_ratio))
        opt.step()
    task_loss = np.stack(hist_loss, 1)  # (M, n_log, n_tasks)
    task_acc = np.stack(hist_acc, 1)
    return [
        {
            "alpha": float(alpha),
            "width": width,
            "seed": seed,
            "lr": lr,
            "optimizer": optimizer,
            **({"momentum": momentum} if optimizer == "sgd" else {}),
            "n_tasks": n_tasks,
            "n_bits": n_bits,
            "k_sparse": k_sparse,
            "subset_seed": subset_seed,
            **({"subset_bits": int(subset_bits)} if subset_bits is not None else {}),
            **(
                {"schedule": schedule, "final_ratio": final_ratio} if schedule != "constant" else {}
            ),
            "batch_size": batch_size,
            "n_params": int(ens.n_params[m]),
            "step": log,
            "examples": [s * batch_size for s in log],
            "task_loss": np.round(task_loss[m], 5).tolist(),
            "task_acc": np.round(task_acc[m], 4).tolist(),
        }
        for m, (width, seed, lr) in enumerate(members)
    ]


# --------------------------------------------------------------------------- analysis


def width_sweep(
    records: list[dict],
    alpha: float,
    lr: float = 1e-2,
    step: int | None = None,
    sweep: str = "width",
):
    """The width sweep at ``alpha`` (main learning rate), at logged ``step`` (default: last),
    from the records labelled ``sweep``.

    Returns ``dict(widths, n_params, seeds, task_loss (seeds, widths, tasks), task_acc,
    loss (seeds, widths) = sum_k p_k L_k, n_learned (seeds, widths), probs)``.
    """
    recs = [
        r
        for r in records
        if r["sweep"] == sweep and r["alpha"] == alpha and math.isclose(r["lr"], lr)
    ]
    widths = sorted({r["width"] for r in recs})
    seeds = sorted({r["seed"] for r in recs})
    by = {(r["width"], r["seed"]): r for r in recs}
    i = -1 if step is None else recs[0]["step"].index(step)
    tl = np.array([[by[w, s]["task_loss"][i] for w in widths] for s in seeds])
    ta = np.array([[by[w, s]["task_acc"][i] for w in widths] for s in seeds])
    probs = records_probs(recs[0])
    return {
        "widths": np.array(widths),
        "n_params": np.array([by[w, seeds[0]]["n_params"] for w in widths]),
        "seeds": seeds,
        "task_loss": tl,
        "task_acc": ta,
        "loss": mean_loss(tl, probs),
        "n_learned": learned(tl).sum(-1),
        "probs": probs,
    }


def data_sweep(records: list[dict], alpha: float, lr: float = 1e-2):
    """The data sweep at ``alpha``: ``dict(examples (logs,), seeds, task_loss (seeds, logs,
    tasks), task_acc, loss (seeds, logs), n_learned (seeds, logs), width, probs)``."""
    recs = sorted(
        (
            r
            for r in records
            if r["sweep"] == "data" and r["alpha"] == alpha and math.isclose(r["lr"], lr)
        ),
        key=lambda r: r["seed"],
    )
    tl = np.array([r["task_loss"] for r in recs])
    probs = records_probs(recs[0])
    return {
        "examples": np.array(recs[0]["examples"]),
        "seeds": [r["seed"] for r in recs],
        "task_loss": tl,
        "task_acc": np.array([r["task_acc"] for r in recs]),
        "loss": mean_loss(tl, probs),
        "n_learned": learned(tl).sum(-1),
        "width": recs[0]["width"],
        "probs": probs,
    }


def best_learning_rate(records: list[dict], alpha: float, sweep: str = "data", seed: int = 0):
    r"""The learning rate of the grid (the members of ``seed`` in ``sweep`` at ``alpha``) whose
    final mean loss :math:`\sum_k p_k L_k` is lowest, and ``{lr: final mean loss}``."""
    recs = [r for r in records if r["sweep"] == sweep and r["alpha"] == alpha and r["seed"] == seed]
    if not recs:
        raise ValueError(f"no {sweep} records at alpha={alpha}, seed={seed}")
    final = {r["lr"]: float(mean_loss(r["task_loss"][-1], records_probs(r))) for r in recs}
    return min(final, key=final.get), final


def own_examples(probs, examples, task_loss, threshold: float = 0.1 * LN2):
    """:math:`D_k p_k`, the examples of its own that subtask :math:`k` had seen when it was
    learned (:func:`first_crossing`; ``nan`` if never). The quantization model has it
    constant, :math:`\tau`."""
    return first_crossing(examples, task_loss, threshold) * np.asarray(probs, dtype=np.float64)


def step_loss(probs, examples, task_loss, threshold: float = 0.1 * LN2) -> np.ndarray:
    """The quantization model's loss at the measured learning times: :math:`\\ln 2` times the
    summed frequency of the subtasks not yet learned at each logged :math:`D` (a subtask
    counts as learned from :math:`D_k`, :func:`first_crossing`, on). It differs from the
    measured mean loss only in the shape of each subtask's curve: a step from :math:`\\ln 2`
    to 0 at :math:`D_k` instead of the measured fall."""
    examples = np.asarray(examples, dtype=np.float64)
    dk = first_crossing(examples, task_loss, threshold)
    not_yet = ~(examples[:, None] >= dk[None, :])  # nan (never learned) compares False
    return LN2 * (not_yet * np.asarray(probs, dtype=np.float64)).sum(-1)


def params_per_quantum(n_params, n_learned) -> float:
    """The one constant of the parameter law, :math:`c` in :math:`n = N / c`: the geometric
    mean of :math:`N / n` over the models that learned at least one quantum."""
    n_params, n_learned = np.broadcast_arrays(
        np.asarray(n_params, dtype=np.float64), np.asarray(n_learned, dtype=np.float64)
    )
    ok = n_learned >= 1
    return float(np.exp(np.mean(np.log(n_params[ok] / n_learned[ok]))))


def fit_learning_times(probs, examples, task_loss, threshold: float = 0.1 * LN2):
    """Fit :math:`D_k = D_0 + \tau / p_k` to the examples :math:`D_k` at which the subtasks
    are learned (:func:`first_crossing`; subtasks never learned are left out).

    :math:`\tau` is the quantization model's constant, the examples of its own that a
    subtask needs; :math:`D_0` is a start-up delay that the model leaves out: in the online
    regime data and optimizer steps grow together, and even the most frequent subtask needs
    some steps. Least squares on :math:`\\log D_k` (the logging grid is geometric). Returns
    ``(D0, tau, rms)`` with ``rms`` the root-mean-square residual in :math:`\\log D_k`.
    """
    from scipy.optimize import least_squares

    probs = np.asarray(probs, dtype=np.float64)
    dk = first_crossing(examples, task_loss, threshold)
    ok = np.isfinite(dk)
    if ok.sum() < 3:
        raise ValueError("need at least three learned subtasks to fit D0 and tau")
    p, log_dk = probs[ok], np.log(dk[ok])

    def residuals(theta):
        return np.logaddexp(theta[0], theta[1] - np.log(p)) - log_dk

    start = [np.log(dk[ok].min() / 2), np.log(np.median(dk[ok] * p))]
    res = least_squares(residuals, start)
    return float(np.exp(res.x[0])), float(np.exp(res.x[1])), float(np.sqrt(np.mean(res.fun**2)))


def n_learned_continuous(probs, D, tau: float, D0: float = 0.0) -> np.ndarray:
    """:math:`n(D)` solving :math:`p_n (D - D_0) = \tau` with :math:`p_n = n^{-(\alpha+1)}/Z`
    continued to real :math:`n` (``probs`` gives :math:`Z` and :math:`\alpha`); 0 for
    :math:`D \\le D_0`."""
    probs = np.asarray(probs, dtype=np.float64)
    s = -math.log(probs[1] / probs[0]) / math.log(2.0)  # alpha + 1, read off p_1 / p_2
    z = 1.0 / probs[0]
    excess = np.clip(np.asarray(D, dtype=np.float64) - D0, 0.0, None)
    return (excess / (tau * z)) ** (1.0 / s)


def largest_step_share(values) -> float:
    """How abrupt a curve is: its largest change between neighbouring points as a share of
    its net change from the first point to the last, :math:`\\max_i |v_{i+1}-v_i| /
    |v_m - v_1|` (1 for a single clean jump; about :math:`1/(m-1)` for a straight line
    through :math:`m` points; noise on a flat stretch does not dilute it)."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.abs(np.diff(v)).max() / abs(v[-1] - v[0]))


def abrupt_skill(task_acc, low: float = 0.6, high: float = 0.95) -> int | None:
    """The rarest subtask (1-based rank) whose accuracy, along the sweep in ``task_acc``
    (``(points, tasks)``), goes from below ``low`` to above ``high`` between two neighbouring
    points and stays above ``high`` after; ``None`` if there is none."""
    acc = np.asarray(task_acc, dtype=np.float64)
    for k in range(acc.shape[1] - 1, -1, -1):
        a = acc[:, k]
        for i in range(len(a) - 1):
            if a[i] < low and (a[i + 1 :] > high).all():
                return k + 1
    return None


def tuned_width_sweep(records: list[dict], alpha: float, sweep: str = "width") -> dict:
    """The width sweep at ``alpha`` with every width at its own best learning rate: of the
    rates the records hold for that width (every seed trained at each), the one whose final
    mean loss, averaged over the seeds, is lowest. The same dict as :func:`width_sweep`,
    plus ``lr`` (the chosen rate per width), ``lr_grid`` and ``grid_loss``
    ``(rates, widths)`` (the seed-mean final loss at each rate), and ``at_edge`` (the chosen
    rate is the grid's smallest or largest: the grid may not bracket the optimum)."""
    grid = sorted({r["lr"] for r in records if r["sweep"] == sweep and r["alpha"] == alpha})
    if not grid:
        raise ValueError(f"no {sweep!r} records at alpha={alpha}")
    by_lr = [width_sweep(records, alpha, lr=g, sweep=sweep) for g in grid]
    for w in by_lr[1:]:
        same_widths = np.array_equal(w["widths"], by_lr[0]["widths"])
        if not (same_widths and w["seeds"] == by_lr[0]["seeds"]):
            raise ValueError("every learning rate must have the same widths and seeds")
    grid_loss = np.array([w["loss"].mean(0) for w in by_lr])  # (rates, widths)
    best = grid_loss.argmin(0)
    cols = np.arange(len(best))
    out = dict(by_lr[0])
    for key in ("task_loss", "task_acc", "loss", "n_learned"):
        stacked = np.stack([w[key] for w in by_lr])  # (rates, seeds, widths, ...)
        out[key] = stacked[best, :, cols].swapaxes(0, 1)  # (seeds, widths, ...)
    out.update(
        lr=np.array(grid)[best],
        lr_grid=np.array(grid),
        grid_loss=grid_loss,
        at_edge=(best == 0) | (best == len(grid) - 1),
    )
    return out


def parameter_exponent_fit(
    records: list[dict],
    alpha: float,
    step: int | None = None,
    lr: float | None = 1e-2,
    widths: Sequence[int] | None = None,
    sweep: str = "width",
) -> dict:
    r"""Measured and predicted parameter exponent of the width sweep at ``alpha``.

    The fit uses the widths at which every seed learned at least one quantum (and, if
    ``widths`` is given, only those). Per seed: ``measured``, the least-squares slope of
    :math:`\log L` on :math:`-\log N`; ``n_exponent``, the slope of :math:`\log n` (quanta
    learned) on :math:`\log N`, which the theory's assumption, one quantum per fixed number
    of parameters, puts at 1; ``step``, the slope of the model's step-shaped loss
    :math:`\ln 2 \sum_{k > n} p_k` at the measured :math:`n` (a diagnostic: it uses the
    measured counts, so it tests only that the loss is set by the quanta learned).
    ``predicted`` fits one constant, the parameters per quantum :math:`c`
    (:func:`params_per_quantum`), and is the slope of the exact tail :math:`L(N/c)` over the
    same :math:`N`: the theory's :math:`n \propto N`, corrected for the finite list of
    quanta; the measured counts enter only through the one number :math:`c`.

    ``lr=None``: every width at its own best rate (:func:`tuned_width_sweep`, last step).
    """
    if lr is None:
        if step is not None:
            raise ValueError("a tuned sweep is read at its last step")
        w = tuned_width_sweep(records, alpha, sweep=sweep)
    else:
        w = width_sweep(records, alpha, lr=lr, step=step, sweep=sweep)
    use = w["n_learned"].min(0) >= 1
    if widths is not None:
        use &= np.isin(w["widths"], list(widths))
    N = w["n_params"][use]
    measured = np.array([loglog_slope(N, loss[use]) for loss in w["loss"]])
    n_exponent = np.array([-loglog_slope(N, n[use]) for n in w["n_learned"]])
    step_slope = np.array([loglog_slope(N, tail_loss(w["probs"], n[use])) for n in w["n_learned"]])
    c = params_per_quantum(N, w["n_learned"][:, use])
    predicted = theory_slope(w["probs"], N / c)
    return {
        "sweep": w,
        "use": use,
        "measured": measured,
        "n_exponent": n_exponent,
        "step": step_slope,
        "c": c,
        "predicted": predicted,
    }


def budget_convergence(
    records: list[dict], alpha: float, full: str = "width", half: str = "width_half"
) -> dict:
    """Has the width sweep converged in its training budget? The sweep ``full`` and the same
    sweep trained for half the steps, ``half`` (same seeds, data streams and rate grid; each
    run its own cosine schedule, so both end annealed), each width at its own best rate at
    its own budget (:func:`tuned_width_sweep`). Returns ``dict(full, half)`` (the two
    :func:`parameter_exponent_fit` results, over the widths that qualify at both budgets),
    ``steps`` (half, full), ``same_n`` (seeds, widths:
    the quanta learned did not change when the budget doubled), ``rel_change`` (seeds,
    widths: the change of the mean loss, relative to the full budget's) and
    ``exponent_change`` (per seed, full minus half)."""
    alone = {
        name: parameter_exponent_fit(records, alpha, lr=None, sweep=label)
        for name, label in (("full", full), ("half", half))
    }
    f, h = alone["full"]["sweep"], alone["half"]["sweep"]
    if not np.array_equal(f["widths"], h["widths"]) or f["seeds"] != h["seeds"]:
        raise ValueError("the two budgets must have the same widths and seeds")
    steps = tuple(
        next(r["step"][-1] for r in records if r["sweep"] == label and r["alpha"] == alpha)
        for label in (half, full)
    )
    # compared over the same widths: those that qualify (every seed >= 1 quantum) at both
    common = f["widths"][alone["full"]["use"] & alone["half"]["use"]]
    fits = {
        name: parameter_exponent_fit(records, alpha, lr=None, sweep=label, widths=common)
        for name, label in (("full", full), ("half", half))
    }
    return {
        **fits,
        "steps": steps,
        "same_n": f["n_learned"] == h["n_learned"],
        "rel_change": (h["loss"] - f["loss"]) / f["loss"],
        "exponent_change": fits["full"]["measured"] - fits["half"]["measured"],
    }


def learned_in_order(task_loss: np.ndarray, threshold: float = 0.1 * LN2) -> np.ndarray:
    """Of the :math:`n` subtasks a model has learned (last axis: subtasks in order of
    frequency), the fraction that are among the :math:`n` most frequent: 1 when it learned
    exactly the top :math:`n`, as the quantization model has it (``nan`` when it learned
    none)."""
    done = learned(task_loss, threshold)
    n = done.sum(-1)
    top = np.arange(done.shape[-1]) < n[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (done & top).sum(-1) / n, np.nan)


def width_convergence(records: list[dict], alpha: float, lr: float, rel_tol: float = 0.05):
    """Whether each width of a sweep has stopped learning: between the last two logged steps,
    per ``(seed, width)``, the number of quanta learned is unchanged and the mean loss moved by
    less than ``rel_tol`` of itself. Returns ``dict(steps, widths, same_n, rel_change,
    converged)`` (arrays ``(seeds, widths)``)."""
    steps = next(r["step"] for r in records if r["sweep"] == "width" and r["alpha"] == alpha)
    last = width_sweep(records, alpha, lr=lr)
    prev = width_sweep(records, alpha, lr=lr, step=steps[-2])
    same_n = last["n_learned"] == prev["n_learned"]
    rel = np.abs(last["loss"] - prev["loss"]) / last["loss"]
    return {
        "steps": (steps[-2], steps[-1]),
        "widths": last["widths"],
        "same_n": same_n,
        "rel_change": rel,
        "converged": same_n & (rel < rel_tol),
    }


def data_exponent_fit(records: list[dict], alpha: float, lr: float = 1e-2) -> dict:
    """Measured and predicted data exponent of the data sweep at ``alpha``, per seed.

    The fit runs from the first logged :math:`D` at which every seed has learned a quantum
    to the end. For each seed, :func:`fit_learning_times` gives :math:`(D_0, \tau)` from the
    times at which its subtasks were learned; the prediction is the slope of the exact tail
    :math:`L(n(D))` with :math:`p_{n(D)} (D - D_0) = \tau` (:func:`n_learned_continuous`)
    over the same :math:`D` -- the loss is never used to fit it. This is a *description*, not
    a test of the theory: the mean loss is, to a good approximation, :math:`\\ln 2` times the
    summed frequency of the subtasks not yet learned, so a curve that fits the learning times
    fits the loss too. The theory is tested by :func:`late_data_exponent_fit`.
    """
    d = data_sweep(records, alpha, lr)
    use = (d["n_learned"].min(0) >= 1) & (d["examples"] > 0)
    D = d["examples"][use]
    measured = np.array([loglog_slope(D, loss[use]) for loss in d["loss"]])
    times = np.array([fit_learning_times(d["probs"], d["examples"], tl) for tl in d["task_loss"]])
    predicted = np.array(
        [
            loglog_slope(D, tail_loss(d["probs"], n_learned_continuous(d["probs"], D, tau, d0)))
            for d0, tau, _ in times
        ]
    )
    return {
        "sweep": d,
        "use": use,
        "measured": measured,
        "D0": times[:, 0],
        "tau": times[:, 1],
        "rms": times[:, 2],
        "predicted": predicted,
    }


def late_start(examples, task_loss, factor: float = 3.0, threshold: float = 0.1 * LN2) -> float:
    """Where the start-up transient is over: ``factor`` times :math:`D_1`, the examples after
    which the most frequent subtask is learned (a measured time, not a fit)."""
    d1 = first_crossing(examples, np.asarray(task_loss)[:, :1], threshold)[0]
    if not np.isfinite(d1):
        raise ValueError("the most frequent subtask is never learned")
    return float(factor * d1)


def learning_time_exponent(probs, examples, task_loss, start: float, threshold=0.1 * LN2):
    """:math:`\\gamma` in :math:`D_k \\propto p_k^{-\\gamma}`: least-squares slope of
    :math:`\\log D_k` on :math:`\\log(1/p_k)` over the subtasks learned at
    :math:`D_k \\ge` ``start``. The quantization model (a fixed number :math:`\\tau` of a
    subtask's own examples, :math:`D_k = \\tau / p_k`) has :math:`\\gamma = 1`; with a
    start-up delay, :math:`D_k = D_0 + \\tau/p_k`, the slope tends to 1 once
    :math:`D_k \\gg D_0`."""
    dk = first_crossing(examples, task_loss, threshold)
    sel = np.isfinite(dk) & (dk >= start)
    if sel.sum() < 3:
        raise ValueError("need at least three subtasks learned after start")
    return -loglog_slope(1.0 / np.asarray(probs)[sel], dk[sel])


def late_data_exponent_fit(
    records: list[dict],
    alpha: float,
    factor: float = 3.0,
    lr: float = 1e-2,
    anchor_threshold: float | None = 0.1 * LN2,
) -> dict:
    """The data exponent where the start-up transient is over, against the theory.

    Per seed: the measured slope of :math:`\\log L` on :math:`\\log D` over
    :math:`D \\ge` ``factor`` :math:`\\cdot D_1` (:func:`late_start`); the theory's slope over
    the same :math:`D`, for the finite list of quanta: :math:`n(D) \\propto D^{1/(\\alpha+1)}`
    (from :math:`p_n D = \\tau`), anchored at the number of quanta the seed has learned at the
    end, through the exact tail :func:`tail_loss` (the shape of the loss is never used);
    the slope of :func:`step_loss` over the same :math:`D` (``step``: the model's
    step-shaped loss at the measured learning times, a diagnostic that separates the shape of
    each subtask's fall from its timing); and the learning-time exponent :math:`\\gamma` of
    the subtasks learned after
    ``10`` :math:`D_1` (:func:`learning_time_exponent`), with the slope of
    :math:`D_0 + \\tau/p_k` (:func:`fit_learning_times`) over the same subtasks.

    ``anchor_threshold`` is the loss below which a subtask counts as learned when the theory
    is anchored (the number of quanta learned at the end); the learning times and the fit
    range keep the default threshold, so varying it moves the theory alone (its systematic
    error, :func:`data_law_uncertainty`). ``anchor_threshold=None`` anchors without a
    threshold: at the (fractional) :math:`n` whose step-model loss equals the seed's final
    measured loss (:func:`loss_matched_n`). ``n_end`` is the anchor, per seed.

    ``theory`` is the slope of the *smooth* tail: :func:`tail_loss` at the real
    :math:`n(D)`, which interpolates between whole quanta. ``staircase`` is the step model
    taken literally, :func:`tail_loss` at :math:`\\lfloor n(D) \\rfloor` over the same
    :math:`D`: with few quanta learned at the start of the fit (about 2 at
    :math:`3 D_1`) it is steeper than the smooth tail by a few hundredths. On losses made
    of exact steps at :math:`D_k = \\tau/p_k` the measured slope is the staircase's.
    """
    d = data_sweep(records, alpha, lr)
    D, p = d["examples"], d["probs"]
    keys = ("measured", "theory", "staircase", "step", "gamma", "gamma_delay", "start")
    keys += ("decades", "n_end")
    out = {k: [] for k in keys}
    for tl, loss in zip(d["task_loss"], d["loss"], strict=True):
        start = late_start(D, tl, factor)
        u = D >= start
        if anchor_threshold is None:
            n_end = float(loss_matched_n(p, loss[-1]))
        else:
            n_end = float(learned(tl[-1], anchor_threshold).sum())
        n_theory = n_end * (D[u] / D[-1]) ** (1.0 / (alpha + 1.0))
        out["n_end"].append(n_end)
        out["measured"].append(loglog_slope(D[u], loss[u]))
        out["theory"].append(loglog_slope(D[u], tail_loss(p, n_theory)))
        # the step model taken literally: whole quanta only, a staircase
        out["staircase"].append(loglog_slope(D[u], tail_loss(p, np.floor(n_theory))))
        out["step"].append(loglog_slope(D[u], step_loss(p, D, tl)[u]))
        late = late_start(D, tl, 10.0)
        out["gamma"].append(learning_time_exponent(p, D, tl, late))
        d0, tau, _ = fit_learning_times(p, D, tl)
        dk = first_crossing(D, tl, 0.1 * LN2)
        sel = np.isfinite(dk) & (dk >= late)
        out["gamma_delay"].append(-loglog_slope(1.0 / p[sel], d0 + tau / p[sel]))
        out["start"].append(start)
        out["decades"].append(float(np.log10(D[-1] / D[u][0])))
    return {"sweep": d, **{k: np.array(v) for k, v in out.items()}}


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Mean of ``values`` (one per seed) and the half-width of its Student-t confidence
    interval, :math:`t_{(1+\\text{level})/2,\\,n-1}\\, s / \\sqrt{n}` (for 3 seeds at 95 %,
    :math:`t = 4.30`: 2.48 standard deviations of the seeds)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    t = stats.t.ppf(0.5 + level / 2.0, n - 1)
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(n))


def envelope_exponent_fit(
    records: list[dict],
    alpha: float,
    lrs: Sequence[float],
    start_lr: float,
    factor: float = 3.0,
    anchor_threshold: float = 0.1 * LN2,
) -> dict:
    """The data exponent of the best-learning-rate-per-:math:`D` envelope.

    For each seed run at every learning rate of ``lrs`` (same width, batch and steps), the
    envelope is the lowest mean loss over the learning rates at each logged :math:`D`: the
    loss of a run whose learning rate is tuned for that budget alone (with a constant rate;
    a schedule could do better). Measured: its slope over :math:`D \\ge` ``factor``
    :math:`D_1` of the ``start_lr`` run of the seed; theory: as in
    :func:`late_data_exponent_fit`, anchored at the quanta learned at the end by the run
    that is best there. Returns ``measured``, ``theory`` (per seed), ``best_lr``
    ``(seeds, logs)``, ``seeds``, ``examples`` and ``use`` (the fit range, per seed).
    """
    sweeps = {lr: data_sweep(records, alpha, lr) for lr in lrs}
    seeds = sorted(set.intersection(*(set(d["seeds"]) for d in sweeps.values())))
    D = sweeps[lrs[0]]["examples"]
    p = sweeps[lrs[0]]["probs"]
    out = {"measured": [], "theory": [], "best_lr": [], "use": []}
    for s in seeds:
        loss = np.stack([d["loss"][d["seeds"].index(s)] for d in sweeps.values()])
        tls = [d["task_loss"][d["seeds"].index(s)] for d in sweeps.values()]
        best = loss.argmin(0)
        env = loss.min(0)
        st = sweeps[start_lr]
        u = D >= late_start(D, st["task_loss"][st["seeds"].index(s)], factor)
        n_end = learned(tls[best[-1]][-1], anchor_threshold).sum()
        n_theory = n_end * (D[u] / D[-1]) ** (1.0 / (alpha + 1.0))
        out["measured"].append(loglog_slope(D[u], env[u]))
        out["theory"].append(loglog_slope(D[u], tail_loss(p, n_theory)))
        out["best_lr"].append(np.asarray(list(sweeps))[best])
        out["use"].append(u)
    return {"seeds": seeds, "examples": D, **{k: np.array(v) for k, v in out.items()}}


def combined_half_width(
    se: float,
    dof: int,
    half_ranges: Sequence[float],
    level: float = 0.95,
    draws: int = 1_000_000,
    seed: int = 0,
) -> float:
    """Half-width of the central ``level`` interval of a sum of independent errors: a seed
    error :math:`s_e\\, t_\\nu` (the mean of :math:`\\nu + 1` seeds, Student t with
    :math:`\\nu` = ``dof`` degrees of freedom and standard error ``se``) plus, for each
    systematic, an error uniform on :math:`[-h, h]` with :math:`h` its half-range (the
    "rectangular" reading of a range with nothing known inside it, standard uncertainty
    :math:`h/\\sqrt{3}`, of the GUM, JCGM 100:2008), propagated by Monte Carlo as in its
    Supplement 1 (JCGM 101:2008).

    The ``level`` quantile of the absolute sum, by Monte Carlo with a fixed seed (``draws``
    samples: the quantile's sampling error is below 0.5 %). Closed forms it reproduces:
    ``se`` alone gives :math:`t_{(1+\\text{level})/2,\\nu}\\, s_e`; one systematic alone,
    ``level`` :math:`\\cdot h`; two equal ones, :math:`2h(1 - \\sqrt{1-\\text{level}})`.
    """
    rng = np.random.default_rng(seed)
    err = np.zeros(draws)
    if se > 0:
        err += se * rng.standard_t(dof, draws)
    for h in half_ranges:
        err += rng.uniform(-h, h, draws)
    return float(np.quantile(np.abs(err), level))


def seeds_per_arm(sd: float, diff: float, power: float = 0.8, level: float = 0.95) -> int:
    """The smallest number of seeds per arm with which a two-sided two-sample t test at
    ``level`` detects a true difference ``diff`` between two means with probability
    ``power``, each arm's seeds scattering by ``sd`` (the exact power, from the noncentral t
    distribution with :math:`2n-2` degrees of freedom and noncentrality
    :math:`\\delta/(\\sigma\\sqrt{2/n})`). ``power=0.5`` is about the :math:`n` at which
    the interval's half-width equals the difference."""
    from scipy import stats

    for n in range(2, 10_000):
        df = 2 * n - 2
        t = stats.t.ppf(0.5 + level / 2.0, df)
        nc = diff / (sd * math.sqrt(2.0 / n))
        if stats.nct.sf(t, df, nc) + stats.nct.cdf(-t, df, nc) >= power:
            return n
    raise ValueError("more than 10,000 seeds per arm")


def data_law_uncertainty(
    records: list[dict],
    alpha: float,
    lr: float,
    lr_grid: Sequence[float],
    thresholds: Sequence[float] = (0.05 * LN2, 0.5 * LN2),
    level: float = 0.95,
) -> dict:
    """The measured minus the theory's data exponent at ``lr``, with its error budget.

    - ``diff``, ``stat``: the mean over seeds of measured minus theory (each seed against
      the theory anchored on its own run, "learned" below :math:`0.1 \\ln 2`) and the
      half-width of its t interval (:func:`t_interval`; the seeds' scatter); ``se``, ``dof``
      its standard error and degrees of freedom.
    - ``sys_lr``: half the range of that mean difference over the learning rates of
      ``lr_grid`` (the chosen rate and its neighbours) and the best-rate-per-:math:`D`
      envelope (:func:`envelope_exponent_fit`): how much the answer moves with a choice the
      theory does not make.
    - ``sys_threshold``: half the range of the theory's slope over the anchors of
      ``theory_band``: "learned" at each loss of ``thresholds``, and without a threshold,
      the step model's loss matched to each seed's final measured loss (key
      ``"final loss"``), and the model's whole-quanta staircase at the default anchor
      instead of the smooth tail (key ``"staircase"``): the ways of turning the step model
      into a slope for a finite list of quanta that the theory leaves open. The band is not symmetric about the :math:`0.1 \\ln 2` anchor;
      ``band_offsets`` gives its two ends relative to it.
    - ``total``: the half-width of the central ``level`` interval of the three errors
      together (:func:`combined_half_width`: t-distributed seeds, each systematic uniform
      over its range, independent). Its coverage is ``level`` under that model of the
      systematics, and only under it.

    Also ``by_lr`` ``{lr: (measured mean, theory mean, diff mean, n seeds)}`` and the
    ``envelope`` fit.
    """
    fit = late_data_exponent_fit(records, alpha, lr=lr)
    d = fit["measured"] - fit["theory"]
    diff, stat = t_interval(d, level)
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    by_lr = {}
    for g in lr_grid:
        f = fit if g == lr else late_data_exponent_fit(records, alpha, lr=g)
        by_lr[g] = (
            float(f["measured"].mean()),
            float(f["theory"].mean()),
            float((f["measured"] - f["theory"]).mean()),
            len(f["measured"]),
        )
    env = envelope_exponent_fit(records, alpha, lr_grid, start_lr=lr)
    env_diff = float((env["measured"] - env["theory"]).mean())
    diffs = [v[2] for v in by_lr.values()] + [env_diff]
    sys_lr = (max(diffs) - min(diffs)) / 2.0
    band: dict = {
        float(t): float(
            late_data_exponent_fit(records, alpha, lr=lr, anchor_threshold=t)["theory"].mean()
        )
        for t in thresholds
    }
    band["final loss"] = float(
        late_data_exponent_fit(records, alpha, lr=lr, anchor_threshold=None)["theory"].mean()
    )
    band["staircase"] = float(fit["staircase"].mean())
    centre = float(fit["theory"].mean())
    sys_thr = (max(band.values()) - min(band.values())) / 2.0
    return {
        "fit": fit,
        "diff": diff,
        "stat": stat,
        "se": se,
        "dof": len(d) - 1,
        "sys_lr": float(sys_lr),
        "sys_threshold": float(sys_thr),
        "total": combined_half_width(se, len(d) - 1, (sys_lr, sys_thr), level),
        "by_lr": by_lr,
        "envelope": env,
        "envelope_diff": env_diff,
        "theory_band": band,
        "band_offsets": (min(band.values()) - centre, max(band.values()) - centre),
    }


# --------------------------------------------------------------------------- records


def log_spaced_steps(first: int, last: int, n: int) -> list[int]:
    """About ``n`` distinct integer steps spaced evenly in log from ``first`` to ``last``."""
    return sorted({int(round(v)) for v in np.geomspace(first, last, n)})


def quanta_records(config: dict) -> list[dict]:
    """Every ensemble of a config ``{"defaults": {...}, "runs": [kwargs, ...]}``; a run's
    ``log_at`` may be ``{"first", "last", "n"}`` (log-spaced steps). Each record gets the
    run's ``sweep`` label ("width" or "data") and the wall time of its ensemble."""
    records = []
    for kwargs in config["runs"]:
        kw = {**config.get("defaults", {}), **kwargs}
        label = kw.pop("sweep")
        if isinstance(kw.get("log_at"), dict):
            kw["log_at"] = log_spaced_steps(**kw["log_at"])
        t0 = time.time()
        recs = train_quanta(**kw)
        wall = time.time() - t0
        for r in recs:
            r["sweep"], r["ensemble_seconds"] = label, round(wall, 2)
        records.extend(recs)
        print(f"{label} alpha={kw['alpha']} widths={kw['widths']}: {wall:.1f} s", flush=True)
    return records


def load_records(name: str = "ch08_quanta") -> list[dict]:
    """Read ``records/<name>.jsonl`` (one JSON object per line)."""
    with open(RECORDS / f"{name}.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def records_probs(record: dict) -> np.ndarray:
    """The subtask frequencies of a record's data source."""
    return zipf_frequencies(record["n_tasks"], record["alpha"])


def main(argv=None) -> None:
    """``python -m scalinglab.quanta CONFIG.json --out records.jsonl`` (1 thread, CPU)."""
    from scalinglab.sweep_cli import records_main

    records_main(quanta_records, main.__doc__, argv)


if __name__ == "__main__":
    main()
