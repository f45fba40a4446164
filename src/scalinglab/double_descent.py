r"""Model-wise, sample-wise and epoch-wise double descent of small MLPs.

Helpers to *predict* where the peak of a double-descent curve sits, to *find* it in a
sweep, and to load or re-run the sweeps chapter 6 ships. The training itself is the
course's engine (:func:`scalinglab.engine.sweep.run_sweep`): nothing here trains a model.

Where to look. A ReLU MLP ``in_dim -> [width] * depth -> out_dim`` has

.. math::

    N(w) = (d_\text{in} + 1)\,w + (L - 1)(w + 1)\,w + (w + 1)\,d_\text{out}
         = (L-1)\,w^2 + (d_\text{in} + L + d_\text{out})\,w + d_\text{out}

parameters (``L = depth`` hidden layers of width ``w``). The interpolation threshold --
the smallest model that fits every training label, noisy ones included -- is, as a
*heuristic*, where :math:`N(w) \approx n` (Nakkiran et al. 2021 call the largest :math:`n`
a training procedure can fit its *effective model complexity*; Belkin et al. 2019, with
squared loss on :math:`K` one-hot outputs, place it at :math:`N \approx n K`, since the
network must then fit :math:`nK` numbers). :func:`width_for_param_count` inverts
:math:`N(w) = n` in closed form. For greydanus/mnist1d's sweep (``40 -> w -> w -> 10``, 4000
training examples, 15% label noise, cross-entropy) the :math:`N = n` heuristic gives
:math:`w \approx 42` and :math:`N = nK` gives :math:`w \approx 176`; the notebook
``notebooks/deep-double-descent.ipynb`` at commit
``9129ceb92e231b7bf0b066689a0bf2c3860d2a42`` has its highest test errors (about 54 %) at
:math:`w = 47` and :math:`w = 61`, two neighbouring points of its coarse grid.

What to read off a sweep. :func:`interpolation_threshold` is the first model size whose
training error reaches (almost) zero; :func:`sweet_spot` is the first local minimum of the
test curve (the bottom of the classical U) and :func:`locate_peak` the maximum of the test
error to its right.

The shipped sweeps. ``scalinglab/records/<name>.config.json`` is a sweep config
(:mod:`scalinglab.engine.sweep_config`, run by ``scalinglab sweep``) and ``<name>.jsonl`` the
records it wrote, one per model per logged step (the engine's tidy format, so epoch-wise
curves are in there too). :func:`load_records` reads them, :func:`regenerate_command` says
how to rebuild them and :func:`rerun_shipped` retrains any slice of a shipped grid with the
same data and hyperparameters (how the chapter checks, live, that the records are what the
code produces).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from importlib import resources

import numpy as np

from scalinglab.models.mlp import mlp_param_count

__all__ = [
    "compare_with_shipped",
    "interpolation_threshold",
    "load_records",
    "locate_peak",
    "mean_curve",
    "mlp_param_count",
    "regenerate_command",
    "rerun_shipped",
    "shipped_config",
    "sweet_spot",
    "width_for_param_count",
]


def width_for_param_count(n_params: float, in_dim: int, depth: int, out_dim: int) -> float:
    r"""The (real) width :math:`w` at which an MLP has exactly ``n_params`` parameters.

    Solves :math:`(L-1)w^2 + (d_\text{in} + L + d_\text{out})w + d_\text{out} = N` for its
    positive root (a linear equation when ``depth == 1``). Round up to get the first
    integer width with at least ``n_params`` parameters.
    """
    a = depth - 1
    b = in_dim + depth + out_dim
    c = out_dim - n_params
    if n_params <= out_dim:
        raise ValueError(f"n_params must exceed out_dim={out_dim}, got {n_params}")
    if a == 0:
        return -c / b
    # Numerically stable positive root of a w^2 + b w + c (c < 0, so no cancellation here).
    return 2.0 * -c / (b + math.sqrt(b * b - 4.0 * a * c))


def mean_curve(
    records: Iterable[dict], x: str = "width", y: str = "test_error", **where
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average ``y`` over seeds at every value of ``x``, for records matching ``where``.

    ``where`` filters on exact field values, e.g. ``final=True`` (the end of training) or
    ``width=48`` with ``x="steps"`` (a training curve). Returns the sorted unique ``x``
    values, the mean of ``y`` and its standard error (0 for a single seed).
    """
    rows = [r for r in records if all(r.get(k) == v for k, v in where.items())]
    if not rows:
        raise ValueError(f"no records match {where}")
    xs = np.array(sorted({r[x] for r in rows}))
    mean, sem = np.empty(len(xs)), np.empty(len(xs))
    for i, value in enumerate(xs):
        ys = np.array([r[y] for r in rows if r[x] == value], dtype=float)
        mean[i] = ys.mean()
        sem[i] = ys.std(ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else 0.0
    return xs, mean, sem


def _check_sorted(xs: Sequence[float]) -> np.ndarray:
    xs = np.asarray(xs)
    if np.any(np.diff(xs) <= 0):
        raise ValueError("xs must be strictly increasing")
    return xs


def interpolation_threshold(xs: Sequence[float], train_error: Sequence[float], tol: float = 0.0):
    """Smallest ``x`` (model size) whose training error is ``<= tol``.

    ``xs`` must be sorted increasingly. Returns ``None`` when no model interpolates.
    """
    xs, train_error = _check_sorted(xs), np.asarray(train_error, dtype=float)
    hits = np.flatnonzero(train_error <= tol)
    return None if len(hits) == 0 else xs[hits[0]].item()


def sweet_spot(xs: Sequence[float], test_error: Sequence[float]):
    """The classical sweet spot: ``x`` of the first local minimum of the test error.

    Walks down the under-parameterized side of the U from the smallest model while the
    error keeps falling. ``xs`` must be sorted increasingly.
    """
    xs, ys = _check_sorted(xs), np.asarray(test_error, dtype=float)
    start = 0
    while start + 1 < len(ys) and ys[start + 1] < ys[start]:
        start += 1
    return xs[start].item()


def locate_peak(xs: Sequence[float], test_error: Sequence[float]):
    """Location of the double-descent peak: the test-error maximum after the sweet spot.

    Small models have a large test error too, so the global maximum is not the peak. We
    first walk down the classical U to its first local minimum (:func:`sweet_spot`) and
    return the ``x`` of the largest test error to its right.
    """
    xs, ys = _check_sorted(xs), np.asarray(test_error, dtype=float)
    start = int(np.flatnonzero(xs == sweet_spot(xs, ys))[0])
    return xs[start + int(np.argmax(ys[start:]))].item()


def _records_file(name: str, suffix: str):
    return resources.files("scalinglab").joinpath("records", f"{name}{suffix}")


def load_records(name: str) -> list[dict]:
    """Records shipped with the package: ``scalinglab/records/<name>.jsonl``."""
    from scalinglab.engine.sweep_config import load_records as read_jsonl

    with resources.as_file(_records_file(name, ".jsonl")) as path:
        return read_jsonl(path)


def shipped_config(name: str) -> dict:
    """The sweep config (:mod:`scalinglab.engine.sweep_config`) of ``scalinglab/records/<name>.jsonl``."""
    return json.loads(_records_file(name, ".config.json").read_text())


def regenerate_command(name: str) -> str:
    """The shell command that rebuilds a shipped records file from its config.

    Run it from the repository root. One thread avoids oversubscribing a shared CPU: the
    models are small and PyTorch's spinning worker threads would only wait for each other.
    The records were made on the CPU in float32; a GPU (bf16 autocast) gives close but not
    identical numbers, hence ``--device cpu``. ``--force`` because the command replaces the
    shipped file (``scalinglab sweep`` refuses to overwrite records otherwise).
    """
    folder = "src/scalinglab/records"
    return (
        f"OMP_NUM_THREADS=1 scalinglab sweep {folder}/{name}.config.json "
        f"--out {folder}/{name}.jsonl --device cpu --force"
    )


def rerun_shipped(
    name: str,
    widths: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    n_train: Sequence[int] | None = None,
    steps: int | Sequence[int] | None = None,
    num_threads: int | None = 1,
    device=None,
    progress: bool = False,
) -> list[dict]:
    """Retrain a slice of a shipped sweep with the engine: same data, model and optimizer.

    Any of ``widths, seeds, n_train, steps`` left ``None`` keeps the shipped grid's value.
    Returns the engine's records (:func:`scalinglab.engine.sweep.run_sweep`). A retrained model
    equals its shipped twin up to float rounding: the engine pads every member of an
    ensemble to the widest one, so a different slice sums the same numbers in a different
    order, and Adam slowly amplifies such one-ulp differences.

    ``num_threads`` temporarily sets PyTorch's CPU threads (restored afterwards); ``None``
    leaves them alone.
    """
    import torch

    from scalinglab.engine.sweep import SweepGrid, run_sweep
    from scalinglab.engine.sweep_config import load_dataset

    config = shipped_config(name)
    grid = dict(config["grid"])
    for key, value in (("widths", widths), ("seeds", seeds), ("n_train", n_train)):
        if value is not None:
            grid[key] = list(value)
    if steps is not None:
        grid["steps"] = steps
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return run_sweep(
            SweepGrid(**grid),
            load_dataset(config["dataset"]),
            task=config.get("task", "classification"),
            device=device,
            progress=progress,
            **config.get("training", {}),
        )
    finally:
        torch.set_num_threads(threads)


def compare_with_shipped(
    live: Iterable[dict],
    shipped: Iterable[dict],
    y: str = "test_error",
    k: float = 3.0,
    floor: float = 0.005,
) -> list[dict]:
    r"""Compare retrained records with their shipped twins, within a tolerance.

    A retrained model is not bit-identical to its shipped twin on every machine (another
    CPU, BLAS or thread count sums in another order, and Adam amplifies one-ulp
    differences; near the interpolation threshold the model is at its most sensitive). A
    rounding-level perturbation can at most act like another random seed, so the tolerance
    for each (width, steps, n_train) is ``k`` times the standard deviation of ``y`` over the
    shipped seeds at that point, and at least ``floor`` (5 test examples in 1000 by default).

    Returns one dict per live record with ``steps > 0``: ``width, steps, seed, live,
    shipped, diff, tolerance, ok``.
    """
    shipped = list(shipped)
    out = []
    for rec in live:
        if rec["steps"] == 0:
            continue
        key = (rec["width"], rec["steps"], rec["n_train"])
        same = [r for r in shipped if (r["width"], r["steps"], r["n_train"]) == key]
        twin = next(r for r in same if r["seed"] == rec["seed"])
        spread = float(np.std([r[y] for r in same], ddof=1)) if len(same) > 1 else 0.0
        tol = max(k * spread, floor)
        diff = abs(rec[y] - twin[y])
        out.append(
            dict(
                width=rec["width"],
                steps=rec["steps"],
                seed=rec["seed"],
                live=rec[y],
                shipped=twin[y],
                diff=diff,
                tolerance=tol,
                ok=bool(diff <= tol),
            )
        )
    return out
