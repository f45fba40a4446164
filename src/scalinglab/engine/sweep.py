"""Sweeps: train a grid of MLPs (width x data size x steps x seed) and return tidy records.

:class:`SweepGrid` names the grid; :func:`run_sweep` trains it. Compatible models -- the
same training-set size ``n_train`` and widths within a factor of two of each other (all
widths up to 64 count as one) -- are trained together as one
:class:`scalinglab.engine.ensemble.MLPEnsemble`, so a sweep of hundreds of small models costs a
few batched training loops. Bucketing widths by powers of two bounds the padding waste: no
member above width 64 is padded to more than twice its width.

Data of size ``n_train`` are the first ``n_train`` examples of ``dataset["x_train"]``, so the
training sets of a sweep are nested and differ only in how much data the model sees.

Records (stable format)
-----------------------
One flat dict **per model per logged step** (a "long", tidy table: ``pandas.DataFrame(records)``
just works). Keys:

=================  ============================================================================
``model``          ``"mlp"``
``task``           ``"classification"`` or ``"regression"``
``width, depth``   hidden width and number of hidden layers
``activation``     activation name
``n_params``       true trainable parameter count of the model (weights and biases)
``n_train``        training-set size
``seed``           init seed (also seeds the mini-batch order)
``lr``             learning rate
``weight_decay``   (decoupled for AdamW) weight decay
``batch_size``     examples per step (``n_train`` for full batch)
``steps``          optimizer steps taken when the record was logged
``examples_seen``  ``steps * batch_size``
``flops``          exact training matmul FLOPs so far: ``examples_seen *``
                   :func:`scalinglab.engine.flops.mlp_train_flops_per_example`
``train_loss``     loss on the ``n_train`` training examples (cross-entropy or MSE)
``test_loss``      loss on the whole test set
``train_error``    classification error, or fraction of variance unexplained (regression)
``test_error``     same on the test set
``final``          ``True`` for the model's last record (``steps == max(grid.steps)``)
``schedule``       learning-rate schedule (``"constant"`` or ``"cosine"``, see
                   :func:`scalinglab.engine.training.lr_factor`) and ``warmup`` its warmup steps
``device``         what trained it: ``"cpu"``, ``"mps"`` or ``"cuda:<GPU model>"`` (bf16
                   autocast), see :func:`scalinglab.engine.device.device_label`. Records made
                   before this key was added (the shipped ones, all made on the CPU) lack it.
=================  ============================================================================

One epoch per run (``grid.epochs``): instead of a shared step budget, every model trains
for ``epochs * n_train / batch_size`` steps, with its schedule ending at its own end. This
is how a scaling-law sweep is done (Hoffmann et al. 2022): every (N, D) point is the end of
its own run, not an intermediate checkpoint of a longer one. ``grid.max_flops`` leaves out
the points whose training compute would exceed it.

Logged steps: 0, every ``log_every`` steps, every value of ``grid.steps`` and the last one.
Training with a constant learning rate to ``max(steps)`` and logging on the way gives the
models of every shorter ``steps`` value for free.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm  # a text bar, never a Jupyter widget (the book is read offline)

from scalinglab.engine.device import device_label, get_device
from scalinglab.engine.ensemble import MLPEnsemble, train_ensemble
from scalinglab.engine.flops import mlp_train_flops_per_example
from scalinglab.models.mlp import check_positive_int

RECORD_KEYS = (
    "model",
    "task",
    "width",
    "depth",
    "activation",
    "n_params",
    "n_train",
    "seed",
    "lr",
    "weight_decay",
    "batch_size",
    "steps",
    "examples_seen",
    "flops",
    "train_loss",
    "test_loss",
    "train_error",
    "test_error",
    "final",
    "schedule",
    "warmup",
)
#: Keys of every record this version writes beyond :data:`RECORD_KEYS`; older records
#: (the shipped ones among them) lack them.
NEW_RECORD_KEYS = ("device",)


def _as_list(name: str, value, minimum: int) -> list[int]:
    values = [value] if np.isscalar(value) else list(value)
    if not values:
        raise ValueError(f"{name} must not be empty")
    return [check_positive_int(name, v, minimum) for v in values]


def _as_float_list(name: str, value) -> list[float] | None:
    if value is None:
        return None
    values = [value] if np.isscalar(value) else list(value)
    if not values:
        raise ValueError(f"{name} must not be empty")
    return [float(v) for v in values]


@dataclass
class SweepGrid:
    """The Cartesian grid of a sweep.

    ``widths``, ``n_train``, ``seeds`` are lists (a scalar is a one-element list);
    ``steps`` is an int or a list of step counts at which every model is recorded.
    Optional ``lrs`` / ``weight_decays`` add hyperparameter axes; when ``None`` the
    ``lr`` / ``weight_decay`` given to :func:`run_sweep` is used.
    """

    widths: Sequence[int]
    n_train: Sequence[int]
    steps: int | Sequence[int] = 0
    seeds: Sequence[int] = (0,)
    depth: int = 1
    lrs: Sequence[float] | None = None
    weight_decays: Sequence[float] | None = None
    epochs: float | None = None
    max_flops: float | None = None

    def __post_init__(self) -> None:
        self.widths = _as_list("widths", self.widths, 1)
        self.n_train = _as_list("n_train", self.n_train, 1)
        self.steps = sorted(set(_as_list("steps", self.steps, 0)))
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.max_flops is not None and not self.max_flops > 0:
            raise ValueError(f"max_flops must be > 0, got {self.max_flops}")
        self.seeds = _as_list("seeds", self.seeds, 0)
        self.depth = check_positive_int("depth", self.depth)
        self.lrs = _as_float_list("lrs", self.lrs)
        self.weight_decays = _as_float_list("weight_decays", self.weight_decays)
        if self.lrs is not None and min(self.lrs) <= 0:
            raise ValueError(f"learning rates must be > 0, got {self.lrs}")
        if self.weight_decays is not None and min(self.weight_decays) < 0:
            raise ValueError(f"weight decays must be >= 0, got {self.weight_decays}")

    @property
    def max_steps(self) -> int:
        return max(self.steps)

    def __len__(self) -> int:
        """Number of models trained (``steps`` values share a model)."""
        n_lr = len(self.lrs) if self.lrs else 1
        n_wd = len(self.weight_decays) if self.weight_decays else 1
        return len(self.widths) * len(self.n_train) * len(self.seeds) * n_lr * n_wd


def width_bucket(width: int, min_width: int = 64) -> int:
    """Widths in :math:`(2^{k-1}, 2^k]` share bucket ``k``: padding at most doubles the cost.

    Widths up to ``min_width`` share one bucket: such models are so small that the step
    time is overhead, and training them together is what makes the sweep fast.
    """
    return math.ceil(math.log2(max(width, min_width)))


def run_steps(grid: SweepGrid, n_train: int, batch_size: int | None) -> tuple[int, list[int]]:
    """Steps of a run on ``n_train`` examples and the ``grid.steps`` values logged on the way.

    With ``grid.epochs`` every run takes ``epochs * n_train / batch_size`` steps, its schedule
    ending at its own end; without, every run takes ``max(grid.steps)``.
    """
    if grid.epochs is None:
        return grid.max_steps, list(grid.steps)
    steps = max(1, round(grid.epochs * n_train / (batch_size or n_train)))
    return steps, [s for s in grid.steps if s <= steps]  # checkpoints on the way


def plan_groups(
    grid: SweepGrid,
    lr: float,
    weight_decay: float,
    max_models: int = 64,
    skip: Collection[tuple] = (),
    flops_per_example=None,
) -> list[list[dict]]:
    """Split the grid into groups trainable as one ensemble (same ``n_train``, width bucket).

    Models whose :func:`model_id` is in ``skip`` (e.g. finished in an earlier run) are left out;
    with ``grid.max_flops`` and ``grid.epochs``, so are those whose training compute
    ``epochs * n_train * flops_per_example(width)`` exceeds it.
    """
    lrs = grid.lrs or [float(lr)]
    wds = grid.weight_decays or [float(weight_decay)]
    groups: dict[tuple[int, int], list[dict]] = {}
    for n, w, s, a, d in itertools.product(grid.n_train, grid.widths, grid.seeds, lrs, wds):
        point = {"n_train": n, "width": w, "seed": s, "lr": a, "weight_decay": d}
        if model_id({**point, "depth": grid.depth}) in skip:
            continue
        if grid.max_flops and grid.epochs and flops_per_example is not None:
            if grid.epochs * n * flops_per_example(w) > grid.max_flops:
                continue
        groups.setdefault((n, width_bucket(w)), []).append(point)
    out = []
    for key in sorted(groups):
        members = groups[key]
        out += [members[i : i + max_models] for i in range(0, len(members), max_models)]
    return out


def model_id(record: Mapping) -> tuple:
    """What identifies a trained model: ``(width, depth, n_train, seed, lr, weight_decay)``."""
    return tuple(record[k] for k in ("width", "depth", "n_train", "seed", "lr", "weight_decay"))


def _dims(dataset: Mapping, task: str) -> tuple[int, int]:
    x = np.asarray(dataset["x_train"])
    if x.ndim != 2:
        raise ValueError(f"x_train must be 2-D (n, features), got shape {x.shape}")
    if task == "classification":
        out_dim = int(max(np.max(dataset["y_train"]), np.max(dataset["y_test"]))) + 1
    else:
        y = np.asarray(dataset["y_train"])
        out_dim = 1 if y.ndim == 1 else y.shape[1]
    return x.shape[1], out_dim


def iter_sweep(
    grid: SweepGrid,
    dataset: Mapping,
    task: str = "classification",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "adamw",
    momentum: float = 0.0,
    batch_size: int | None = None,
    log_every: int | None = None,
    activation: str = "relu",
    init: str = "kaiming",
    device: torch.device | str | None = None,
    progress: bool | None = None,
    max_models_per_group: int = 64,
    skip: Collection[tuple] = (),
    schedule: str = "constant",
    warmup_fraction: float = 0.0,
    on_trained: Callable[[list[dict], MLPEnsemble], None] | None = None,
) -> Iterator[dict]:
    """Like :func:`run_sweep` but yields records group by group (for incremental writing).

    ``skip``: :func:`model_id` tuples of models not to train (to resume a sweep).
    ``schedule`` / ``warmup_fraction``: each run's learning-rate schedule over its own steps,
    with ``round(warmup_fraction * steps)`` (at least 1 if the fraction is > 0) warmup steps.
    ``on_trained(group, ensemble)``: called with each group's points (``width``, ``seed``,
    ``lr``, ``weight_decay``, ``n_train``, one per member) and its trained ensemble, before
    its records are yielded (to measure the trained models in ways the records do not).
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in dataset:
            raise ValueError(
                f"dataset must have keys x_train, y_train, x_test, y_test; missing {key}"
            )
    n_available = len(dataset["x_train"])
    if max(grid.n_train) > n_available:
        raise ValueError(f"n_train={max(grid.n_train)} exceeds the {n_available} training examples")
    in_dim, out_dim = _dims(dataset, task)
    device = get_device() if device is None else torch.device(device)
    label = device_label(device)

    def per_example(width: int) -> float:
        return mlp_train_flops_per_example(in_dim, width, grid.depth, out_dim)

    groups = plan_groups(grid, lr, weight_decay, max_models_per_group, set(skip), per_example)
    if progress is None:  # a bar on a terminal; none in a notebook, a book page or a log
        progress = sys.stderr.isatty()
    bar = tqdm(total=sum(map(len, groups)), disable=not progress, desc="sweep", unit="model")
    try:  # close the bar on Ctrl-C too, so a message after it starts on a fresh line
        for group in groups:
            n = group[0]["n_train"]
            data = {
                "x_train": dataset["x_train"][:n],
                "y_train": dataset["y_train"][:n],
                "x_test": dataset["x_test"],
                "y_test": dataset["y_test"],
            }
            widths = [p["width"] for p in group]
            seeds = [p["seed"] for p in group]
            ens = MLPEnsemble(in_dim, widths, grid.depth, out_dim, seeds, activation, init)
            steps, log_at = run_steps(grid, n, batch_size)
            warmup = max(1, round(warmup_fraction * steps)) if warmup_fraction > 0 else 0
            hist = train_ensemble(
                ens,
                data,
                task,
                steps=steps,
                schedule=schedule,
                warmup=warmup,
                lr=[p["lr"] for p in group],
                weight_decay=[p["weight_decay"] for p in group],
                optimizer=optimizer,
                momentum=momentum,
                batch_size=batch_size,
                log_every=log_every,
                log_at=log_at,
                device=device,
            )
            if on_trained is not None:
                on_trained(group, ens)
            bs = int(hist["batch_size"])
            for m, (point, n_params) in enumerate(zip(group, ens.n_params, strict=True)):
                flops_per = per_example(point["width"])
                for k, step in enumerate(hist["step"]):
                    yield {
                        "model": "mlp",
                        "task": task,
                        "width": point["width"],
                        "depth": grid.depth,
                        "activation": activation,
                        "n_params": n_params,
                        "n_train": n,
                        "seed": point["seed"],
                        "lr": point["lr"],
                        "weight_decay": point["weight_decay"],
                        "batch_size": bs,
                        "steps": step,
                        "examples_seen": step * bs,
                        "flops": step * bs * flops_per,
                        "train_loss": float(hist["train_loss"][k, m]),
                        "test_loss": float(hist["test_loss"][k, m]),
                        "train_error": float(hist["train_error"][k, m]),
                        "test_error": float(hist["test_error"][k, m]),
                        "final": step == steps,
                        "schedule": schedule,
                        "warmup": warmup,
                        "device": label,
                    }
            bar.update(len(group))
    finally:
        bar.close()


def run_sweep(
    grid: SweepGrid,
    dataset: Mapping,
    task: str = "classification",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "adamw",
    momentum: float = 0.0,
    batch_size: int | None = None,
    log_every: int | None = None,
    activation: str = "relu",
    init: str = "kaiming",
    device: torch.device | str | None = None,
    progress: bool | None = None,
    max_models_per_group: int = 64,
    schedule: str = "constant",
    warmup_fraction: float = 0.0,
) -> list[dict]:
    """Train every model of ``grid`` on ``dataset`` and return the tidy records.

    ``dataset`` is a dict ``x_train, y_train, x_test, y_test`` (e.g. from
    :func:`scalinglab.data.mnist1d.make_mnist1d`); ``task`` is ``"classification"`` (integer
    labels, cross-entropy) or ``"regression"`` (MSE). ``lr`` / ``weight_decay`` apply unless
    the grid has ``lrs`` / ``weight_decays`` axes; ``optimizer`` is ``"adamw"`` or ``"sgd"``
    (with ``momentum``, e.g. 0.9 as in greydanus's MNIST-1D sweeps). ``batch_size=None`` is full-batch training;
    ``log_every`` adds logged steps to those of ``grid.steps``. ``device=None`` picks the best
    available (:func:`scalinglab.engine.device.get_device`). ``progress`` shows a text progress
    bar; ``None`` (the default) shows it only on a terminal, so notebooks and book pages get
    none. See the module docstring for the record keys.
    """
    return list(
        iter_sweep(
            grid,
            dataset,
            task=task,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            momentum=momentum,
            batch_size=batch_size,
            log_every=log_every,
            activation=activation,
            init=init,
            device=device,
            progress=progress,
            max_models_per_group=max_models_per_group,
            schedule=schedule,
            warmup_fraction=warmup_fraction,
        )
    )


def final_records(records: Sequence[dict]) -> list[dict]:
    """Only the last record of every model."""
    return [r for r in records if r["final"]]
