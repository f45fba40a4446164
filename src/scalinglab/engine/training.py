"""A plain training loop for one model: classification, regression and next-token prediction.

This is the loop the chapters show and the *sequential reference* that the batched
ensemble (:mod:`scalinglab.engine.ensemble`) must reproduce. It is deliberately ordinary:
``torch.optim.AdamW`` (or SGD), a fixed learning rate, full-batch or mini-batch gradient
steps, and evaluation of the whole train and test sets at logged steps.

Losses and errors
-----------------
- classification: loss = mean cross-entropy :math:`-\\frac1n\\sum_i \\log p_\\theta(y_i\\mid x_i)`,
  error = fraction of misclassified examples.
- regression: loss = mean squared error :math:`\\frac{1}{n k}\\sum_{i,j} (f_j(x_i) - y_{ij})^2`
  over the ``k`` outputs; error = fraction of variance unexplained, the MSE divided by the
  per-output variance of the targets of that split (0 is perfect, 1 is "predict the mean").
- next-token: the loss is the cross-entropy of predicting ``tokens[:, t+1]`` from
  ``tokens[:, :t+1]`` averaged over all positions, error = next-token error rate.

Mini-batches
------------
``batch_size=None`` means full-batch gradient descent. Otherwise each epoch draws a fresh
permutation of the training set from a :class:`torch.Generator` seeded with ``seed`` and
cuts it into batches of exactly ``batch_size`` (the last incomplete batch is dropped so
that every step sees the same number of examples). :class:`BatchSchedule` is shared with
the ensemble, which is how a batched model and its sequential twin see identical batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm  # a text bar, never a Jupyter widget (the book is read offline)

from scalinglab.engine.device import autocast, get_device

TASKS = ("classification", "regression", "next_token")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("constant", "cosine")


def lr_factor(
    step: int, total: int, schedule: str = "constant", warmup: int = 0, final_ratio: float = 0.1
) -> float:
    r"""Multiplier of the peak learning rate for the update made at ``step`` (0-based).

    ``"constant"``: 1 after a linear warmup. ``"cosine"``: linear warmup over ``warmup``
    updates, :math:`(s+1)/W`, then a cosine from 1 down to ``final_ratio`` at the run's end,

    .. math:: f(s) = r + (1 - r)\,\tfrac12\big(1 + \cos(\pi\,(s - W)/(T - W))\big),

    the schedule of Hoffmann et al. (2022): a cosine cycle as long as the run, decaying the
    learning rate 10x (``final_ratio = 0.1``). It equals ``torch.optim.lr_scheduler``'s
    ``SequentialLR([LinearLR(1/W, 1, W - 1), CosineAnnealingLR(T - W, r * lr)], [W])``
    (``tests/test_schedule.py``).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    if warmup < 0 or (total > 0 and warmup >= total):
        raise ValueError(f"warmup must be in [0, total), got {warmup} of {total}")
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    t = (step - warmup) / (total - warmup)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * t))


class BatchSchedule:
    """Indices of successive mini-batches: reshuffled every epoch, drop the ragged end.

    ``next()`` returns a ``LongTensor`` of ``batch_size`` indices into ``range(n)``.
    With ``batch_size=None`` (or ``>= n``) every batch is the full training set, in order.
    """

    def __init__(self, n: int, batch_size: int | None, seed: int) -> None:
        if n < 1:
            raise ValueError(f"need at least one training example, got n={n}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be None or >= 1, got {batch_size}")
        self.n = int(n)
        self.full_batch = batch_size is None or batch_size >= n
        self.batch_size = self.n if self.full_batch else int(batch_size)
        self._generator = torch.Generator().manual_seed(int(seed))
        self._perm: torch.Tensor | None = None
        self._pos = 0

    def permutation(self) -> torch.Tensor:
        """A fresh random order of the training set: the next epoch's."""
        return torch.randperm(self.n, generator=self._generator)

    def epoch_ended(self, pos: int) -> bool:
        """Whether a batch starting at ``pos`` would run past the end of the epoch."""
        return pos + self.batch_size > self.n

    def next(self) -> torch.Tensor | None:
        """Indices of the next batch, or ``None`` for full-batch training (use all data)."""
        if self.full_batch:
            return None
        if self._perm is None or self.epoch_ended(self._pos):
            self._perm = self.permutation()
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def take(a: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``a[idx]`` for an index tensor of any shape, via ``index_select`` (several times faster
    than advanced indexing on the CPU): the result has shape ``idx.shape + a.shape[1:]``."""
    flat = a.index_select(0, idx.reshape(-1).to(a.device))
    return flat.view(*idx.shape, *a.shape[1:])


def logged_steps(steps: int, log_every: int | None, extra: Iterable[int] = ()) -> list[int]:
    """Steps at which to evaluate: 0, every ``log_every``, the ``extra`` ones and ``steps``."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    out = {0, int(steps)}
    if log_every:
        if log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {log_every}")
        out.update(range(0, steps + 1, int(log_every)))
    for s in extra:
        if not 0 <= s <= steps:
            raise ValueError(f"logged step {s} outside [0, {steps}]")
        out.add(int(s))
    return sorted(out)


def as_tensor(a, dtype: torch.dtype | None = None, device: torch.device | None = None):
    """NumPy array or tensor -> tensor on ``device`` (float arrays become float32)."""
    if isinstance(a, torch.Tensor):
        t = a
    else:
        a = np.asarray(a)
        t = torch.from_numpy(a.astype(np.float32) if a.dtype == np.float64 else a)
    if dtype is not None:
        t = t.to(dtype)
    return t.to(device) if device is not None else t


def loss_and_error(
    task: str,
    out: torch.Tensor,
    y: torch.Tensor,
    y_var: torch.Tensor | None = None,
    with_error: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-model mean loss and error over the example axis (the second-to-last of ``out``).

    ``out`` has shape ``(..., batch, k)``; the leading axes (e.g. the model axis of an
    ensemble) are kept, so an ensemble gets one loss per member. With ``with_error=False``
    (training steps) the error is not computed and ``None`` is returned in its place.
    """
    out = out.float()
    if task == "classification":
        lead = out.shape[:-1]
        ce = F.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.expand(lead).reshape(-1), reduction="none"
        )
        loss = ce.view(lead).mean(-1)
        if not with_error:
            return loss, None
        error = (out.argmax(-1) != y).float().mean(-1)
        return loss, error
    if task == "regression":
        se = (out - y).pow(2)
        loss = se.mean(dim=(-1, -2))
        if not with_error:
            return loss, None
        var = y_var if y_var is not None else y.var(dim=-2, unbiased=False)
        error = (se.mean(-2) / var.clamp_min(1e-12)).mean(-1)
        return loss, error
    if task == "next_token":  # out: (..., batch, T, vocab), y: (batch, T)
        lead = out.shape[:-1]
        ce = F.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.expand(lead).reshape(-1), reduction="none"
        )
        loss = ce.view(lead).mean(dim=(-1, -2))
        if not with_error:
            return loss, None
        error = (out.argmax(-1) != y).float().mean(dim=(-1, -2))
        return loss, error
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


def make_optimizer(
    params, optimizer: str, lr: float, weight_decay: float, momentum: float = 0.0
) -> torch.optim.Optimizer:
    """``torch.optim.AdamW`` or ``torch.optim.SGD`` with the given hyperparameters."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")


def split_arrays(data: Mapping, device: torch.device, task: str):
    """``(x_train, y_train, x_test, y_test)`` as tensors on ``device`` with the task's dtypes.

    Classification labels become int64, regression targets float32 of shape ``(n, k)``.
    Raises ``ValueError`` for missing keys or splits whose x and y lengths differ.
    """
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in data:
            raise ValueError(f"data must have keys x_train, y_train, x_test, y_test; missing {key}")
    if len(data["x_train"]) != len(data["y_train"]) or len(data["x_test"]) != len(data["y_test"]):
        raise ValueError("x and y of a split must have the same number of examples")
    if task == "classification":
        xs = [as_tensor(data[k], device=device) for k in ("x_train", "x_test")]
        ys = [as_tensor(data[k], torch.long, device) for k in ("y_train", "y_test")]
    elif task == "regression":
        xs = [as_tensor(data[k], torch.float32, device) for k in ("x_train", "x_test")]
        ys = [as_tensor(data[k], torch.float32, device) for k in ("y_train", "y_test")]
        ys = [y[:, None] if y.dim() == 1 else y for y in ys]
    else:
        xs = [as_tensor(data[k], torch.long, device) for k in ("x_train", "x_test")]
        ys = [as_tensor(data[k], torch.long, device) for k in ("y_train", "y_test")]
    return xs[0], ys[0], xs[1], ys[1]


def prepare(data: Mapping, task: str, device) -> tuple[torch.device, tuple, list | None]:
    """Common set-up of single-model and ensemble training: the device (``None`` picks the
    best available), the four split tensors on it, and -- for regression -- the variance of
    the train and test targets (the denominators of the "error", the fraction of variance
    unexplained)."""
    device = get_device() if device is None else torch.device(device)
    splits = split_arrays(data, device, task)
    y_var = None
    if task == "regression":
        y_var = [y.var(dim=0, unbiased=False) for y in (splits[1], splits[3])]
    return device, splits, y_var


def fit(
    model: nn.Module,
    data: Mapping,
    task: str,
    steps: int = 1000,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "adamw",
    momentum: float = 0.0,
    batch_size: int | None = None,
    log_every: int | None = 100,
    log_at: Iterable[int] = (),
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
    schedule: str = "constant",
    warmup: int = 0,
) -> dict[str, list]:
    """Train ``model`` in place and return its history (see :func:`train_classifier`).

    ``schedule`` / ``warmup``: the learning-rate schedule of :func:`lr_factor` over ``steps``
    updates, applied through ``torch.optim.lr_scheduler.LambdaLR``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    device, (x_tr, y_tr, x_te, y_te), y_var = prepare(data, task, device)
    model.to(device)
    opt = make_optimizer(model.parameters(), optimizer, lr, weight_decay, momentum)
    lr_factor(0, steps, schedule, warmup)  # check the schedule's arguments
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(min(s, max(steps - 1, 0)), max(steps, 1), schedule, warmup)
    )
    batches = BatchSchedule(len(x_tr), batch_size, seed)
    log = logged_steps(steps, log_every, log_at)

    history: dict[str, list] = {
        k: [] for k in ("step", "train_loss", "test_loss", "train_error", "test_error")
    }

    def evaluate(step: int) -> None:
        model.eval()
        with torch.no_grad(), autocast(device):
            for name, x, y, var in (
                ("train", x_tr, y_tr, y_var[0] if y_var else None),
                ("test", x_te, y_te, y_var[1] if y_var else None),
            ):
                loss, error = loss_and_error(task, model(x), y, var)
                history[f"{name}_loss"].append(float(loss))
                history[f"{name}_error"].append(float(error))
        history["step"].append(step)
        model.train()

    model.train()
    log_set = set(log)
    for step in tqdm(range(steps + 1), disable=not progress, desc="training"):
        if step in log_set:
            evaluate(step)
        if step == steps:
            break
        idx = batches.next()
        xb, yb = (x_tr, y_tr) if idx is None else (take(x_tr, idx), take(y_tr, idx))
        with autocast(device):
            loss, _ = loss_and_error(task, model(xb), yb, with_error=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        scheduler.step()
    history["batch_size"] = batches.batch_size
    return history


def train_classifier(model: nn.Module, data: Mapping, **kwargs) -> dict[str, list]:
    """Train a classifier (logits ``(batch, n_classes)``) with cross-entropy.

    ``data`` is a dict with ``x_train, y_train, x_test, y_test`` (NumPy arrays or tensors,
    integer labels). Keyword arguments: ``steps, lr, weight_decay, optimizer ("adamw" |
    "sgd"), momentum, batch_size (None = full batch), log_every, log_at (extra steps),
    seed (batch order), device, progress``.

    Returns ``{"step", "train_loss", "test_loss", "train_error", "test_error"}`` as lists,
    one entry per logged step, and ``"batch_size"`` (examples per step).
    """
    return fit(model, data, "classification", **kwargs)


def train_regressor(model: nn.Module, data: Mapping, **kwargs) -> dict[str, list]:
    """Train a regressor with mean squared error; same arguments as :func:`train_classifier`.

    ``y`` may be ``(n,)`` or ``(n, k)``; the error is the fraction of variance unexplained.
    """
    return fit(model, data, "regression", **kwargs)


def train_next_token(model: nn.Module, tokens: Mapping, **kwargs) -> dict[str, list]:
    """Train a sequence model (``model(tokens) -> (batch, T, vocab)``) on next-token prediction.

    ``tokens`` is a dict with ``train`` and ``test`` integer arrays of shape
    ``(n_seq, T + 1)``; the model reads positions ``0..T-1`` and predicts ``1..T``.
    Same keyword arguments as :func:`train_classifier`.
    """
    data = {
        "x_train": np.asarray(tokens["train"])[:, :-1],
        "y_train": np.asarray(tokens["train"])[:, 1:],
        "x_test": np.asarray(tokens["test"])[:, :-1],
        "y_test": np.asarray(tokens["test"])[:, 1:],
    }
    return fit(model, data, "next_token", **kwargs)
