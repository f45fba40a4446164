r"""ReLU MLPs trained to convergence on the torus teacher (chapter 5).

The resolution argument of :mod:`scalinglab.resolution` is about a model that *fits* its
training points and interpolates between them. A network trained at a constant learning
rate for a fixed number of steps does neither well: Adam keeps jittering around a floor set
by the step size, and a fixed step budget is thousands of epochs for a small training set
but only a couple of hundred for a large one -- the large-:math:`n` end of the curve is
under-trained, which flattens the fitted slope. This module trains the same networks the
way a convergence claim needs:

* **a step budget that grows with the data**, :math:`T(n) = \max(T_\min,\ e\,n/B)` steps
  (:func:`step_budget`; :math:`e` epochs of batches of :math:`B`), times a *budget factor*
  (1/4, 1/2, 1) so that the slope can be plotted against the budget: a converged slope
  no longer moves when the budget doubles;
* **a learning-rate decay**, cosine from :math:`\eta_0` to 0 over the run
  (:func:`cosine_lr`), which removes the step-size floor;
* **the learning rate tuned per configuration**: every :math:`(d, n)` trains each seed at
  every learning rate of the grid in one batched ensemble (one rate per member,
  :class:`scalinglab.engine.ensemble.StackedAdamW`), and :func:`best_by_validation` picks,
  per :math:`(d, n, \text{width}, \text{budget})`, the rate with the lowest mean MSE on a
  *validation* set -- 2000 further teacher points, disjoint from both the training and the
  test set, so the test MSE stays an unbiased estimate.

:func:`convergence_records` runs a config (``records/ch05_mlp_converged.config.json``);
``python -m scalinglab.resolution_training CONFIG --out RECORDS`` writes the shipped records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from scalinglab.engine.ensemble import MLPEnsemble, StackedAdamW, StackedBatches
from scalinglab.engine.training import BatchSchedule, take

__all__ = [
    "CONVERGED_RECORDS",
    "regenerate_converged_command",
    "step_budget",
    "cosine_lr",
    "train_decayed",
    "convergence_records",
    "best_by_validation",
    "converged_curve",
    "final_records",
    "main",
]


#: Name of the shipped records (``scalinglab/records/<name>.jsonl`` and ``.config.json``).
CONVERGED_RECORDS = "ch05_mlp_converged"


def regenerate_converged_command() -> str:
    """The shell command (from the repository root) that rewrites the shipped records."""
    folder = "src/scalinglab/records"
    return (
        f"OMP_NUM_THREADS=1 python -m scalinglab.resolution_training "
        f"{folder}/{CONVERGED_RECORDS}.config.json --out {folder}/{CONVERGED_RECORDS}.jsonl"
    )


def step_budget(n: int, epochs: float, batch_size: int, min_steps: int) -> int:
    r""":math:`\max(T_\min, \lceil e\, n / B \rceil)`: at least ``epochs`` passes over the
    ``n`` training points, and never fewer than ``min_steps`` steps."""
    if n < 1 or epochs <= 0 or batch_size < 1 or min_steps < 0:
        raise ValueError("need n >= 1, epochs > 0, batch_size >= 1, min_steps >= 0")
    return max(int(min_steps), math.ceil(epochs * n / batch_size))


def cosine_lr(step: int, steps: int, lr: float) -> float:
    r"""Cosine decay :math:`\eta_t = \tfrac12 \eta_0 (1 + \cos(\pi t / T))`: :math:`\eta_0`
    at step 0, 0 at step :math:`T`."""
    if steps < 1 or not 0 <= step <= steps:
        raise ValueError(f"need 0 <= step <= steps and steps >= 1, got {step}, {steps}")
    return 0.5 * lr * (1.0 + math.cos(math.pi * step / steps))


def _mse(ens: MLPEnsemble, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-member mean squared error on the whole split (no gradient)."""
    with torch.no_grad():
        return ((ens(x) - y) ** 2).mean(dim=(1, 2)).numpy().astype(np.float64)


def train_decayed(
    data: Mapping[str, np.ndarray],
    widths: Sequence[int],
    seeds: Sequence[int],
    lrs: Sequence[float],
    steps: int,
    batch_size: int = 128,
    depth: int = 2,
    n_logs: int = 4,
) -> list[dict]:
    """Train one ReLU MLP per ``(widths[m], seeds[m], lrs[m])`` on ``data`` with AdamW
    (no weight decay), mini-batches of ``batch_size`` and the cosine schedule of
    :func:`cosine_lr` over ``steps`` steps, all members in one batched ensemble.

    ``data`` holds float arrays ``x_train, y_train, x_val, y_val, x_test, y_test``. Member
    ``m`` starts from the weights of ``MLP(..., seed=seeds[m])`` and draws its batches with
    ``seeds[m]``, so members that differ only in the learning rate see the same batches.
    Returns one record per member and logged step (``n_logs`` evenly spaced logs, the last
    one at ``steps``, marked ``"final": True``) with the train, validation and test MSE.
    """
    if not len(widths) == len(seeds) == len(lrs):
        raise ValueError("widths, seeds and lrs must have one entry per member")
    split = {
        k: torch.as_tensor(np.asarray(v), dtype=torch.float32).reshape(len(v), -1)
        for k, v in data.items()
    }
    x_tr, y_tr = split["x_train"], split["y_train"]
    ens = MLPEnsemble(x_tr.shape[1], widths, depth, y_tr.shape[1], seeds)
    lr0 = torch.as_tensor(lrs, dtype=torch.float64)
    opt = StackedAdamW(list(ens.parameters()), lr0.clone())
    batches = StackedBatches([BatchSchedule(len(x_tr), batch_size, s) for s in seeds])
    log_at = {round(steps * (k + 1) / n_logs) for k in range(n_logs)}
    records = []
    for step in range(1, steps + 1):
        # The rate used at step t (1-based) is the schedule's value at t - 1: eta_0 first.
        opt.lr = lr0 * (0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps)))
        idx = batches.next()
        if batches.schedules[0].full_batch:
            xb, yb = x_tr, y_tr
        else:
            xb, yb = take(x_tr, idx), take(y_tr, idx)
        loss = ((ens(xb) - yb) ** 2).mean(dim=(1, 2)).sum()  # members are independent
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in log_at:
            mses = {
                k: _mse(ens, split[f"x_{k}"], split[f"y_{k}"]) for k in ("train", "val", "test")
            }
            for m in range(ens.n_models):
                records.append(
                    {
                        "width": int(widths[m]),
                        "seed": int(seeds[m]),
                        "lr": float(lrs[m]),
                        "steps": step,
                        "total_steps": int(steps),
                        "train_mse": float(mses["train"][m]),
                        "val_mse": float(mses["val"][m]),
                        "test_mse": float(mses["test"][m]),
                        "final": step == steps,
                    }
                )
    return records


def _dataset(d: int, n_max: int, n_val: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    """Teacher data on :math:`T^d`: the first ``n_max`` training points (sizes are nested
    prefixes), ``n_val`` further *independent* points for validation, the usual test set."""
    from scalinglab.data.teacher_student import teacher_student_dataset

    data = teacher_student_dataset(
        n_train=n_max + n_val, n_test=n_test, intrinsic_dim=d, manifold="torus", seed=seed
    )
    return {
        "x_pool": data["x_train"][:n_max],
        "y_pool": data["y_train"][:n_max],
        "x_val": data["x_train"][n_max:],
        "y_val": data["y_train"][n_max:],
        "x_test": data["x_test"],
        "y_test": data["y_test"],
    }


def convergence_records(config: Mapping, progress=None) -> list[dict]:
    """Every run of ``config`` (see ``records/ch05_mlp_converged.config.json``).

    ``config["runs"]`` is a list of blocks ``{dims, n_train, widths, seeds, lrs,
    budget_factors}``; every combination trains, one ensemble per
    ``(d, n, budget factor)`` holding all widths x seeds x lrs. ``config["budget"]`` gives
    ``epochs, min_steps, batch_size`` of :func:`step_budget`; ``config["dataset"]`` gives
    ``n_val, n_test, seed``. ``progress`` (a callable taking a string) reports each group.
    """
    budget, ds = config["budget"], config["dataset"]
    n_max = max(max(block["n_train"]) for block in config["runs"])
    records: list[dict] = []
    cache: dict[int, dict] = {}
    for block in config["runs"]:
        members = [
            (w, s, lr) for w in block["widths"] for s in block["seeds"] for lr in block["lrs"]
        ]
        widths, seeds, lrs = (list(v) for v in zip(*members, strict=True))
        for d in block["dims"]:
            if d not in cache:
                cache[d] = _dataset(d, n_max, ds["n_val"], ds["n_test"], ds["seed"])
            pool = cache[d]
            for n in block["n_train"]:
                for factor in block["budget_factors"]:
                    full = step_budget(
                        n, budget["epochs"], budget["batch_size"], budget["min_steps"]
                    )
                    steps = max(1, round(factor * full))
                    data = {
                        "x_train": pool["x_pool"][:n],
                        "y_train": pool["y_pool"][:n],
                        **{k: pool[k] for k in ("x_val", "y_val", "x_test", "y_test")},
                    }
                    out = train_decayed(
                        data, widths, seeds, lrs, steps, budget["batch_size"], config["depth"]
                    )
                    for r in out:
                        r.update(d=int(d), n_train=int(n), budget_factor=float(factor))
                    records.extend(out)
                    if progress is not None:
                        best = min(r["test_mse"] for r in out if r["final"])
                        progress(f"d={d} n={n} factor={factor} steps={steps}: best test {best:.2e}")
    return records


def best_by_validation(records: Sequence[dict]) -> list[dict]:
    """Final records with the learning rate tuned per configuration: for every
    ``(d, n_train, width, budget_factor)`` keep, for each seed, the run at the learning
    rate whose mean validation MSE over seeds is lowest (the test MSE plays no part)."""
    groups: dict[tuple, dict[float, list[dict]]] = {}
    for r in records:
        if r["final"]:
            key = (r["d"], r["n_train"], r["width"], r["budget_factor"])
            groups.setdefault(key, {}).setdefault(r["lr"], []).append(r)
    out = []
    for by_lr in groups.values():
        best = min(by_lr, key=lambda lr: np.mean([r["val_mse"] for r in by_lr[lr]]))
        out.extend(by_lr[best])
    return out


def converged_curve(records: Sequence[dict], d: int, width: int = 128, budget_factor=1.0):
    """``(ns, test_mse)`` with ``test_mse`` of shape ``(n_seeds, len(ns))``: the
    validation-tuned final test MSE of every seed (:func:`best_by_validation`)."""
    chosen = [
        r
        for r in best_by_validation(records)
        if r["d"] == d and r["width"] == width and r["budget_factor"] == budget_factor
    ]
    if not chosen:
        raise ValueError(f"no records for d={d}, width={width}, budget factor {budget_factor}")
    ns = sorted({r["n_train"] for r in chosen})
    seeds = sorted({r["seed"] for r in chosen})
    table = {(r["seed"], r["n_train"]): r["test_mse"] for r in chosen}
    return np.array(ns), np.array([[table[(s, n)] for n in ns] for s in seeds])


def final_records(records: Sequence[dict], d: int, n: int, width: int = 128, budget_factor=1.0):
    """The final records (one per seed and learning rate) of one configuration."""
    return [
        r
        for r in records
        if r["final"]
        and (r["d"], r["n_train"], r["width"], r["budget_factor"]) == (d, n, width, budget_factor)
    ]


def main(argv=None) -> None:
    """``python -m scalinglab.resolution_training CONFIG.json --out records.jsonl``
    (1 thread, CPU; progress to stderr)."""
    import sys

    from scalinglab.sweep_cli import records_main

    def run(config):
        return convergence_records(config, progress=lambda s: print(s, file=sys.stderr, flush=True))

    records_main(run, main.__doc__, argv)


if __name__ == "__main__":
    main()
