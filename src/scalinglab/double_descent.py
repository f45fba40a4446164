r"""Model-wise, sample-wise and epoch-wise double descent of small MLPs.

Helpers to *predict* where the peak of a double-descent curve sits and to *find* it in a
sweep.

Where to look. A one- or two-hidden-layer ReLU MLP ``in_dim -> [width] * depth ->
out_dim`` has

.. math::

    N(w) = (d_\text{in} + 1)\,w + (L - 1)(w + 1)\,w + (w + 1)\,d_\text{out}
         = (L-1)\,w^2 + (d_\text{in} + L + d_\text{out})\,w + d_\text{out}

parameters (``L = depth`` hidden layers of width ``w``). The interpolation threshold --
the smallest model that fits every training label, noisy ones included -- sits roughly
where :math:`N(w) \approx n` (Belkin et al. 2019; Nakkiran et al. 2021 call the
corresponding quantity the *effective model complexity*). :func:`width_for_param_count`
inverts :math:`N(w) = n` in closed form. For greydanus/mnist1d's published sweep
(``40 -> w -> w -> 10``, 4000 training examples, 15% label noise) this predicts
:math:`w \approx 42`; the published test-error peak is near :math:`w = 47`
(:math:`N = 4663`).

What to read off a sweep. :func:`interpolation_threshold` is the first model size whose
training error reaches (almost) zero; :func:`locate_peak` is the maximum of the test error
to the right of the classical sweet spot (the first local minimum of the test curve).

Running the sweeps. :func:`run_width_sweep` trains one full-batch Adam MLP per
``(width, n_train, seed)`` on MNIST-1D with label noise and returns flat records (the
training engine's schema plus a ``history`` of test errors for epoch-wise double descent).
``python -m scalinglab.double_descent CONFIG.json OUT.jsonl`` regenerates the records the
chapter ships in ``scalinglab/records/``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from scalinglab.models.mlp import mlp_param_count

__all__ = [
    "interpolation_threshold",
    "load_records",
    "locate_peak",
    "mean_curve",
    "mlp_param_count",
    "mnist1d_with_label_noise",
    "run_width_sweep",
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

    ``where`` filters on exact field values, e.g. ``label_noise=0.15``. Returns the sorted
    unique ``x`` values, the mean of ``y`` and its standard error (0 for a single seed).
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


def interpolation_threshold(xs: Sequence[float], train_error: Sequence[float], tol: float = 0.0):
    """Smallest ``x`` (model size) whose training error is ``<= tol``.

    ``xs`` must be sorted increasingly. Returns ``None`` when no model interpolates.
    """
    xs, train_error = np.asarray(xs), np.asarray(train_error, dtype=float)
    if np.any(np.diff(xs) <= 0):
        raise ValueError("xs must be strictly increasing")
    hits = np.flatnonzero(train_error <= tol)
    return None if len(hits) == 0 else xs[hits[0]].item()


def locate_peak(xs: Sequence[float], test_error: Sequence[float]):
    """Location of the double-descent peak: the test-error maximum after the sweet spot.

    Small models have a large test error too, so the global maximum is not the peak. We
    first walk down the classical U to its first local minimum (the sweet spot) and
    return the ``x`` of the largest test error to its right.
    """
    xs, ys = np.asarray(xs), np.asarray(test_error, dtype=float)
    if np.any(np.diff(xs) <= 0):
        raise ValueError("xs must be strictly increasing")
    start = 0
    while start + 1 < len(ys) and ys[start + 1] < ys[start]:
        start += 1
    return xs[start + int(np.argmax(ys[start:]))].item()


def mnist1d_with_label_noise(
    n_train: int, n_test: int = 1000, label_noise: float = 0.0, seed: int = 0
) -> dict[str, np.ndarray]:
    """MNIST-1D from its generator (never downloaded), with noisy training labels.

    A fraction ``label_noise`` of training examples gets a label drawn uniformly from the
    10 classes (so about 10% of those keep their label, as in greydanus/mnist1d's double
    descent notebook). Test labels stay clean. Returns ``x_train, y_train, x_test,
    y_test`` and ``flipped`` (bool mask of the relabelled examples).
    """
    import mnist1d

    args = mnist1d.data.get_dataset_args()
    args.num_samples = n_train + n_test
    args.train_split = n_train / (n_train + n_test)
    args.seed = seed
    data = mnist1d.data.make_dataset(args)
    rng = np.random.default_rng(seed + 12345)
    y_train = np.array(data["y"][:n_train])
    flipped = rng.random(n_train) < label_noise
    y_train[flipped] = rng.integers(0, 10, int(flipped.sum()))
    return dict(
        x_train=np.asarray(data["x"][:n_train], np.float32),
        y_train=y_train,
        x_test=np.asarray(data["x_test"][:n_test], np.float32),
        y_test=np.asarray(data["y_test"][:n_test]),
        flipped=flipped,
    )


def run_width_sweep(
    widths: Sequence[int],
    n_trains: Sequence[int],
    label_noise: float,
    seeds: Sequence[int] = (0,),
    depth: int = 1,
    steps: int = 3000,
    lr: float = 3e-3,
    log_every: int = 100,
    n_test: int = 1000,
    experiment: str = "",
    progress: bool = True,
) -> list[dict]:
    """Train one full-batch Adam MLP per ``(n_train, seed, width)``; return flat records.

    Each record holds the engine's fields (``model, width, depth, n_params, n_train,
    seed, steps, flops, train_loss, test_loss, train_error, test_error``) plus
    ``label_noise``, ``experiment`` (a free label such as ``"model-wise"``) and
    ``history`` (``step``, ``train_error``, ``test_error`` every ``log_every`` steps) for
    epoch-wise double descent. ``flops`` counts
    :math:`6 N n` per full-batch step. Deterministic: data, labels and initial weights
    are functions of the seed; one CPU thread.
    """
    import torch

    # Tiny models: one thread avoids oversubscribing the cores (restored afterwards).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _sweep(
            widths,
            n_trains,
            label_noise,
            seeds,
            depth,
            steps,
            lr,
            log_every,
            n_test,
            experiment,
            progress,
        )
    finally:
        torch.set_num_threads(threads)


def _sweep(
    widths, n_trains, label_noise, seeds, depth, steps, lr, log_every, n_test, experiment, progress
) -> list[dict]:
    """Body of :func:`run_width_sweep`."""
    import torch
    from tqdm.auto import tqdm

    from scalinglab.models.mlp import MLP
    from scalinglab.seeding import seed_everything

    jobs = [(n, s, w) for n in n_trains for s in seeds for w in widths]
    records = []
    cache: dict[tuple[int, int], dict] = {}
    for n_train, seed, width in tqdm(jobs, disable=not progress, desc="MLP sweep"):
        if (n_train, seed) not in cache:
            cache[(n_train, seed)] = mnist1d_with_label_noise(n_train, n_test, label_noise, seed)
        data = cache[(n_train, seed)]
        x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"]).long()
        xt, yt = torch.from_numpy(data["x_test"]), torch.from_numpy(data["y_test"]).long()
        seed_everything(seed)
        model = MLP(x.shape[1], width, depth, 10, seed=seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        history = dict(step=[], train_error=[], test_error=[])

        def evaluate(model=model, x=x, y=y, xt=xt, yt=yt):
            with torch.no_grad():
                out, out_t = model(x), model(xt)
                return (
                    torch.nn.functional.cross_entropy(out, y).item(),
                    torch.nn.functional.cross_entropy(out_t, yt).item(),
                    (out.argmax(1) != y).float().mean().item(),
                    (out_t.argmax(1) != yt).float().mean().item(),
                )

        for step in range(1, steps + 1):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % log_every == 0 or step == steps:
                _, _, train_err, test_err = evaluate()
                history["step"].append(step)
                history["train_error"].append(train_err)
                history["test_error"].append(test_err)
        train_loss, test_loss, train_err, test_err = evaluate()
        records.append(
            dict(
                model="mlp",
                width=int(width),
                depth=int(depth),
                n_params=model.n_params,
                n_train=int(n_train),
                seed=int(seed),
                steps=int(steps),
                flops=float(6 * model.n_params * n_train * steps),
                label_noise=float(label_noise),
                experiment=experiment,
                train_loss=train_loss,
                test_loss=test_loss,
                train_error=train_err,
                test_error=test_err,
                history=history,
            )
        )
    return records


def load_records(name: str) -> list[dict]:
    """Records shipped with the package: ``scalinglab/records/<name>.jsonl``."""
    path = resources.files("scalinglab").joinpath("records", f"{name}.jsonl")
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    """Regenerate a shipped sweep: ``python -m scalinglab.double_descent CONFIG OUT``.

    ``CONFIG`` is a JSON object with a ``runs`` list; each run holds keyword arguments of
    :func:`run_width_sweep`. Records of all runs are written to ``OUT`` as JSON lines.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("config", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    with args.out.open("w") as f:
        for run in config["runs"]:
            for record in run_width_sweep(**run):
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
