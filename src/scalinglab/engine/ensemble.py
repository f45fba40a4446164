"""Many MLPs trained at once: stacked weights, one batched matmul per layer.

A scaling-law sweep trains dozens of small networks. One at a time, each step of a small
MLP is a handful of tiny matmuls and the time goes to Python and kernel-launch overhead.
Stacking the :math:`M` networks' weights into tensors :math:`W_\\ell \\in \\mathbb{R}^{M \\times
n_\\text{in} \\times n_\\text{out}}` turns the :math:`M` forward passes into one batched matrix
product per layer (:func:`torch.baddbmm`):

.. math::

    h^{(m)}_\\ell = \\phi\\big(h^{(m)}_{\\ell-1} W^{(m)}_\\ell + b^{(m)}_\\ell\\big)
    \\qquad m = 1..M \\text{ at once.}

The loss is the *sum* of the members' mean losses, :math:`\\sum_m L_m(\\theta_m)`. Members
share no parameters, so :math:`\\partial/\\partial\\theta_m` of the sum is exactly
:math:`\\nabla L_m(\\theta_m)`: every member gets the gradient it would get alone.

Different widths: padding and masking
-------------------------------------
Members of width :math:`w_m < w_\\max` are padded to :math:`w_\\max` hidden units. The padded
weights start at zero and the padded units' activations are multiplied by a 0/1 mask
:math:`u^{(m)}`, :math:`h \\leftarrow \\phi(z) \\odot u^{(m)}`. A masked unit then (i) outputs 0
whatever its weights, so the next layer's padded rows get zero gradient, and (ii) passes
back :math:`\\partial L/\\partial z = \\partial L/\\partial h \\odot u^{(m)} \\odot \\phi'(z) = 0`,
so its incoming weights and bias get zero gradient too. Zero weights with zero gradient stay
zero under SGD and AdamW (weight decay of 0 is 0), so a padded member *is* the narrower
network at every step -- :meth:`MLPEnsemble.member` extracts it as a plain :class:`MLP`.

Per-model hyperparameters
-------------------------
:class:`StackedAdamW` and :class:`StackedSGD` apply the update rules of
:class:`torch.optim.AdamW` and :class:`torch.optim.SGD` with a learning rate and weight
decay per member (a vector broadcast over each member's slice). With the same seeds and the
same batches (see :class:`scalinglab.engine.training.BatchSchedule`), :func:`train_ensemble`
reproduces :func:`scalinglab.engine.training.fit` member by member up to float rounding;
``tests/test_ensemble.py`` checks it.

"Up to float rounding" needs care with Adam: its update :math:`m/\\sqrt{v}` divides out the
gradient's scale, so a parameter whose gradient is nearly zero still moves by about
:math:`\\eta`, and a one-ulp difference in the step size can decide *which way*. We saw a
step size rounded differently from PyTorch's (``lr`` in float32 times ``m / denom`` instead
of ``lr / (1 - beta1^t)`` in double, rounded once) grow into weight differences of 6e-3 after
200 steps on MNIST-1D. :class:`StackedAdamW` therefore rounds exactly as PyTorch does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # a text bar, never a Jupyter widget (the book is read offline)

from scalinglab.engine.device import autocast
from scalinglab.engine.training import (
    OPTIMIZERS,
    TASKS,
    BatchSchedule,
    logged_steps,
    loss_and_error,
    lr_factor,
    prepare,
    take,
)
from scalinglab.models.mlp import (
    INITS,
    MLP,
    check_positive_int,
    get_activation,
    mlp_param_count,
)


class MLPEnsemble(nn.Module):
    """``M`` independent MLPs ``in_dim -> [w_m] * depth -> out_dim`` evaluated in one pass.

    Member ``m`` starts with exactly the weights of ``MLP(in_dim, widths[m], depth, out_dim,
    activation, init, seed=seeds[m])`` (zero-padded to ``max(widths)``).

    ``forward(x)`` accepts ``x`` of shape ``(batch, in_dim)`` (the same inputs for every
    member) or ``(M, batch, in_dim)`` (one batch per member) and returns
    ``(M, batch, out_dim)``.
    """

    def __init__(
        self,
        in_dim: int,
        widths: Sequence[int],
        depth: int,
        out_dim: int,
        seeds: Sequence[int],
        activation: str = "relu",
        init: str = "kaiming",
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        widths, seeds = list(widths), list(seeds)
        if not widths:
            raise ValueError("widths must be a non-empty list")
        if len(widths) != len(seeds):
            raise ValueError(
                f"widths and seeds must have the same length, got {len(widths)} and {len(seeds)}"
            )
        self.in_dim = check_positive_int("in_dim", in_dim)
        self.depth = check_positive_int("depth", depth)
        self.out_dim = check_positive_int("out_dim", out_dim)
        self.widths = [check_positive_int("width", w) for w in widths]
        self.seeds = [check_positive_int("seed", s, minimum=0) for s in seeds]
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
        self.act = get_activation(activation)
        self.activation, self.init = activation, init
        self.n_models = len(widths)
        w_max = max(self.widths)
        self.max_width = w_max

        dims = [self.in_dim] + [w_max] * self.depth + [self.out_dim]
        weights = [torch.zeros(self.n_models, i, o) for i, o in zip(dims[:-1], dims[1:])]
        biases = [torch.zeros(self.n_models, o) for o in dims[1:]]
        for m, (w, s) in enumerate(zip(self.widths, self.seeds, strict=True)):
            net = MLP(
                self.in_dim, w, self.depth, self.out_dim, activation, init, s, init_std=init_std
            )
            for layer, lin in enumerate(net.linears):
                fan_out, fan_in = lin.weight.shape
                weights[layer][m, :fan_in, :fan_out] = lin.weight.detach().T
                biases[layer][m, :fan_out] = lin.bias.detach()
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in biases)

        # 0/1 mask of real hidden units, (M, 1, w_max); absent when all widths are equal.
        if len(set(self.widths)) > 1:
            mask = torch.arange(w_max)[None, :] < torch.tensor(self.widths)[:, None]
            self.register_buffer("unit_mask", mask.float().unsqueeze(1))
        else:
            self.unit_mask = None

    @property
    def n_params(self) -> list[int]:
        """True parameter count of every member (padding excluded)."""
        return [mlp_param_count(self.in_dim, w, self.depth, self.out_dim) for w in self.widths]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 3) or x.shape[-1] != self.in_dim:
            raise ValueError(
                f"expected inputs (batch, {self.in_dim}) or (M, batch, {self.in_dim}), "
                f"got {tuple(x.shape)}"
            )
        if x.dim() == 3 and x.shape[0] != self.n_models:
            raise ValueError(f"first axis of x must be n_models={self.n_models}, got {x.shape[0]}")
        h = x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if h.dim() == 2:  # shared inputs: (B, i) @ (M, i, o) broadcasts to (M, B, o)
                z = torch.matmul(h, w) + b.unsqueeze(1)
            else:
                z = torch.baddbmm(b.unsqueeze(1), h, w)
            if layer < self.depth:
                h = self.act(z)
                if self.unit_mask is not None:
                    h = h * self.unit_mask
            else:
                h = z
        return h

    @torch.no_grad()
    def member(self, m: int) -> MLP:
        """Member ``m`` as a standalone :class:`MLP` of its true width (current weights)."""
        w = self.widths[m]
        net = MLP(self.in_dim, w, self.depth, self.out_dim, self.activation, self.init, seed=0)
        for layer, lin in enumerate(net.linears):
            fan_out, fan_in = lin.weight.shape
            lin.weight.copy_(self.weights[layer][m, :fan_in, :fan_out].T)
            lin.bias.copy_(self.biases[layer][m, :fan_out])
        return net.to(self.weights[0].device)


def _per_model(value, n: int, name: str) -> torch.Tensor:
    """A scalar or one value per member as a float64 vector of length ``n``."""
    t = torch.as_tensor(value, dtype=torch.float64, device="cpu").flatten()
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"{name} must be a scalar or one value per model ({n}), got {t.numel()}")
    return t


class StackedAdamW:
    """:class:`torch.optim.AdamW` with one learning rate and weight decay per member.

    Update for every member :math:`m` (:math:`g` the gradient, :math:`t` the step):

    .. math::

        \theta \\leftarrow \theta (1 - \\eta_m \\lambda_m),\\quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g,\\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2,

        \theta \\leftarrow \theta - \frac{\\eta_m}{1-\beta_1^t}\\,
        \frac{m_t}{\\sqrt{v_t / (1-\beta_2^t)} + \\epsilon}.

    The per-member scalars are stored once as views that broadcast over each parameter
    (``(M, 1, 1)`` for weights, ``(M, 1)`` for biases), and the arithmetic runs through
    ``torch._foreach_*`` so that one Python call updates every parameter tensor.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr,
        weight_decay=0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        n = self.params[0].shape[0]
        # Hyperparameters stay float64 on the CPU, like Python floats (and because MPS has no
        # float64); only their float32 roundings travel to the parameters' device.
        self.device = self.params[0].device
        lr = _per_model(lr, n, "lr")
        weight_decay = _per_model(weight_decay, n, "weight_decay")
        if (lr <= 0).any() or (weight_decay < 0).any():
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        self.lr, self.weight_decay = lr, weight_decay
        decay = (1 - lr * weight_decay).float().to(self.device)
        self._decay = [decay.view(_broadcast_shape(p)) for p in self.params]
        self.betas, self.eps, self.t = betas, eps, 0
        self.scale = 1.0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def set_scale(self, scale: float) -> None:
        """Multiply every member's learning rate by ``scale`` (a schedule's factor) from the
        next step on; as ``LambdaLR``, the decay and the step use ``lr * scale``."""
        self.scale = float(scale)
        decay = (1 - self.lr * self.scale * self.weight_decay).float().to(self.device)
        self._decay = [decay.view(_broadcast_shape(p)) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2_sqrt = 1 - b1**self.t, (1 - b2**self.t) ** 0.5
        grads = [p.grad for p in self.params]
        torch._foreach_mul_(self.params, self._decay)  # decoupled weight decay
        torch._foreach_lerp_(self.exp_avg, grads, 1 - b1)
        torch._foreach_mul_(self.exp_avg_sq, b2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, self.eps)
        # As torch.optim.AdamW: step size lr / (1 - beta1^t) in double precision, rounded
        # once to float32, times m / denom (the order matters for matching it bit-closely).
        step = (self.lr * self.scale / bc1).float().to(self.device)
        update = torch._foreach_div(self.exp_avg, denom)
        torch._foreach_mul_(update, [step.view(_broadcast_shape(p)) for p in self.params])
        torch._foreach_sub_(self.params, update)


def _broadcast_shape(p: torch.Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a per-member vector over parameter ``p`` (``(-1, 1, ...)``)."""
    return (-1,) + (1,) * (p.dim() - 1)


class StackedSGD:
    """:class:`torch.optim.SGD` (with optional momentum) with per-member lr and weight decay.

    :math:`g \\leftarrow g + \\lambda_m \\theta`, :math:`b \\leftarrow \\mu b + g` (:math:`b=g` at
    the first step), :math:`\\theta \\leftarrow \\theta - \\eta_m b`.
    """

    def __init__(self, params, lr, weight_decay=0.0, momentum: float = 0.0) -> None:
        self.params = list(params)
        n = self.params[0].shape[0]
        lr = _per_model(lr, n, "lr")  # float64 on the CPU, as in StackedAdamW
        weight_decay = _per_model(weight_decay, n, "weight_decay")
        if (lr <= 0).any() or (weight_decay < 0).any():
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        self.lr, self.weight_decay = lr, weight_decay
        # float32 copies: torch.optim.SGD rounds its Python-float hyperparameters the same way
        device = self.params[0].device
        self._lr = [lr.float().to(device).view(_broadcast_shape(p)) for p in self.params]
        self._wd = [weight_decay.float().to(device).view(_broadcast_shape(p)) for p in self.params]
        self.momentum = momentum
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def set_scale(self, scale: float) -> None:
        """Multiply every member's learning rate by ``scale`` from the next step on."""
        device = self.params[0].device
        lr = (self.lr * float(scale)).float().to(device)
        self._lr = [lr.view(_broadcast_shape(p)) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        for k, p in enumerate(self.params):
            g = p.grad + self._wd[k] * p
            if self.momentum:
                buf = self.buffers[k]
                self.buffers[k] = g.clone() if buf is None else buf.mul_(self.momentum).add_(g)
                g = self.buffers[k]
            p.sub_(self._lr[k] * g)


class StackedBatches:
    """``(M, batch_size)`` indices: row ``m`` is what ``schedules[m].next()`` would return.

    All schedules share ``n`` and ``batch_size``, so their epochs end together; the M
    permutations are drawn (each from its own generator) once per epoch and sliced.
    """

    def __init__(self, schedules: Sequence[BatchSchedule]) -> None:
        self.schedules = list(schedules)
        first = self.schedules[0]
        if any((s.n, s.batch_size) != (first.n, first.batch_size) for s in self.schedules):
            raise ValueError("all schedules must have the same n and batch_size")
        self.batch_size = first.batch_size
        self._perms: torch.Tensor | None = None
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._perms is None or self.schedules[0].epoch_ended(self._pos):
            self._perms = torch.stack([s.permutation() for s in self.schedules])
            self._pos = 0
        idx = self._perms[:, self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def _eval_chunks(ens: MLPEnsemble, x: torch.Tensor, budget: int = 2**24) -> torch.Tensor:
    """Forward pass over ``x`` in chunks so that ``M x chunk x width`` stays below ``budget``."""
    chunk = max(1, budget // (ens.n_models * max(ens.max_width, ens.out_dim)))
    return torch.cat([ens(x[i : i + chunk]) for i in range(0, len(x), chunk)], dim=1)


def train_ensemble(
    ensemble: MLPEnsemble,
    data: Mapping,
    task: str = "classification",
    steps: int = 1000,
    lr=1e-3,
    weight_decay=0.0,
    optimizer: str = "adamw",
    momentum: float = 0.0,
    batch_size: int | None = None,
    log_every: int | None = 100,
    log_at: Iterable[int] = (),
    batch_seeds: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    schedule: str = "constant",
    warmup: int = 0,
) -> dict[str, np.ndarray | list]:
    """Train every member of ``ensemble`` on the same data set, in one batched loop.

    ``schedule`` / ``warmup``: the learning rate of update ``s`` is ``lr`` times
    :func:`~scalinglab.engine.training.lr_factor` ``(s, steps, schedule, warmup)``, so a
    cosine schedule ends with this run (as ``fit`` with the same arguments).

    ``lr`` and ``weight_decay`` are scalars or one value per member. Member ``m`` draws its
    mini-batches from a :class:`~scalinglab.engine.training.BatchSchedule` seeded with
    ``batch_seeds[m]`` (default: the member's init seed), exactly as
    :func:`scalinglab.engine.training.fit` does with ``seed=batch_seeds[m]``.

    Returns ``{"step": list, "train_loss", "test_loss", "train_error", "test_error"}`` with
    arrays of shape ``(n_logged_steps, n_models)``, and ``"batch_size"``.
    """
    if task not in ("classification", "regression"):
        raise ValueError(
            f"task must be 'classification' or 'regression' (of {TASKS}), got {task!r}"
        )
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    device, (x_tr, y_tr, x_te, y_te), y_var = prepare(data, task, device)
    ensemble.to(device)
    params = list(ensemble.parameters())
    if optimizer == "adamw":
        opt = StackedAdamW(params, lr, weight_decay)
    else:
        opt = StackedSGD(params, lr, weight_decay, momentum)
    seeds = ensemble.seeds if batch_seeds is None else list(batch_seeds)
    if len(seeds) != ensemble.n_models:
        raise ValueError("batch_seeds must have one seed per model")
    schedules = [BatchSchedule(len(x_tr), batch_size, s) for s in seeds]
    batches = StackedBatches(schedules)
    log_set = set(logged_steps(steps, log_every, log_at))
    lr_factor(0, steps, schedule, warmup)  # check the schedule's arguments

    keys = ("train_loss", "test_loss", "train_error", "test_error")
    history: dict[str, list] = {k: [] for k in ("step", *keys)}

    def evaluate(step: int) -> None:
        with torch.no_grad(), autocast(device):
            for name, x, y, var in (
                ("train", x_tr, y_tr, y_var[0] if y_var else None),
                ("test", x_te, y_te, y_var[1] if y_var else None),
            ):
                loss, error = loss_and_error(task, _eval_chunks(ensemble, x), y, var)
                history[f"{name}_loss"].append(loss.cpu().numpy())
                history[f"{name}_error"].append(error.cpu().numpy())
        history["step"].append(step)

    for step in tqdm(range(steps + 1), disable=not progress, desc="ensemble"):
        if step in log_set:
            evaluate(step)
        if step == steps:
            break
        if schedules[0].full_batch:
            xb, yb = x_tr, y_tr
        else:  # one batch per member: (M, batch) indices gather (M, batch, in_dim)
            idx = batches.next()
            xb, yb = take(x_tr, idx), take(y_tr, idx)
        with autocast(device):
            losses, _ = loss_and_error(task, ensemble(xb), yb, with_error=False)
        opt.zero_grad()
        losses.sum().backward()  # members are independent: each gets its own gradient
        if schedule != "constant" or warmup:
            opt.set_scale(lr_factor(step, steps, schedule, warmup))
        opt.step()

    out: dict[str, np.ndarray | list] = {k: np.stack(history[k]) for k in keys}
    out["step"] = history["step"]
    out["batch_size"] = schedules[0].batch_size
    return out
