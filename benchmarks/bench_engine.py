"""Benchmark of the training engine, against the budgets of the course design.

Measured in one run (``python benchmarks/bench_engine.py``, under a minute with 1 thread):

1. **Batched vs loop.** 32 small MLPs (MNIST-1D, width 32, one hidden layer, 1000 training
   examples, mini-batches of 100, AdamW, 200 steps) trained one by one with
   :func:`scalinglab.engine.training.train_classifier` and together with
   :func:`scalinglab.engine.ensemble.train_ensemble`. Same data, seeds, batches and steps; the
   final weights agree to float tolerance (checked here too). Budget: >= 8x.
2. **Achieved FLOP/s of a wide MLP vs the matmul peak.** The peak is the best of several
   ``torch.mm`` of two 2048 x 2048 float32 matrices; the MLP (512 -> 2048 -> 2048 -> 512,
   batch 1024, the training step of :func:`~scalinglab.engine.training.fit` with AdamW) is charged
   its exact matmul FLOPs (:mod:`scalinglab.engine.flops`). Both are timed call by call and compared
   best-to-best and median-to-median (the machine may be shared). Budget: >= 50%.
3. **Chinchilla fit time** of :func:`scalinglab.fitting.fit_chinchilla` on 250 synthetic
   points drawn from the published law (Hoffmann et al. 2022) with 1% noise. Budget: <= 2 s.

Thread count: ``--threads`` (default 1). On a shared, loaded machine more OpenMP threads than
free cores make PyTorch *much* slower (threads spin waiting for each other), so the default
measures one core; pass ``--threads 2`` on an idle machine. ``--device cuda`` runs parts 1 and
2 on a GPU (with bf16 autocast, as the engine does).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from scalinglab.data.mnist1d import make_mnist1d
from scalinglab.engine.device import autocast
from scalinglab.engine.ensemble import MLPEnsemble, train_ensemble
from scalinglab.engine.flops import mlp_train_flops_per_example
from scalinglab.engine.training import loss_and_error, make_optimizer, train_classifier
from scalinglab.models.mlp import MLP


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_batched_vs_loop(device: torch.device, n_models: int = 32, steps: int = 200) -> dict:
    data = make_mnist1d(n_train=1000, n_test=500, seed=0)
    widths, seeds = [32] * n_models, list(range(n_models))
    kwargs = {"steps": steps, "lr": 3e-3, "batch_size": 100, "log_every": None, "device": device}

    # warm-up (first calls of AdamW and autograd pay one-off import / init costs)
    train_classifier(MLP(40, 32, 1, 10, seed=0), data, **{**kwargs, "steps": 2})
    train_ensemble(MLPEnsemble(40, widths[:2], 1, 10, seeds[:2]), data, **{**kwargs, "steps": 2})

    t0 = time.perf_counter()
    nets = []
    for s in seeds:
        net = MLP(40, 32, 1, 10, seed=s)
        train_classifier(net, data, seed=s, **kwargs)
        nets.append(net)
    _sync(device)
    t_loop = time.perf_counter() - t0

    t0 = time.perf_counter()
    ens = MLPEnsemble(40, widths, 1, 10, seeds)
    train_ensemble(ens, data, **kwargs)
    _sync(device)
    t_batched = time.perf_counter() - t0

    max_diff = max(
        (a - b).abs().max().item()
        for m, net in enumerate(nets)
        for a, b in zip(ens.member(m).parameters(), net.parameters(), strict=True)
    )
    return {
        "loop_s": t_loop,
        "batched_s": t_batched,
        "speedup": t_loop / t_batched,
        "max_weight_diff": max_diff,
    }


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench_wide_mlp_vs_peak(device: torch.device, rounds: int = 12, n: int = 2048) -> dict:
    """Training FLOP/s of a wide MLP and the ``torch.mm`` peak, measured interleaved.

    Each round times one ``n x n`` float32 matmul and one full training step (forward,
    cross-entropy, backward, AdamW -- the step of :func:`scalinglab.engine.training.fit`) of an
    MLP 512 -> 2048 -> 2048 -> 512 on a batch of 1024. Interleaving exposes both to the same
    background load; best and median over the rounds are reported.
    """
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    in_dim, width, depth, out_dim, batch = 512, 2048, 2, 512, 1024
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_dim, generator=g).to(device)
    y = torch.randint(0, out_dim, (batch,), generator=g).to(device)
    net = MLP(in_dim, width, depth, out_dim, seed=0).to(device)
    opt = make_optimizer(net.parameters(), "adamw", 1e-3, 0.0)

    def step() -> None:
        with autocast(device):
            loss, _ = loss_and_error("classification", net(x), y, with_error=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    torch.mm(a, b)
    step()  # warm-up
    t_mm, t_step = [], []
    for _ in range(rounds):
        t_mm.append(_timed(lambda: torch.mm(a, b), device))
        t_step.append(_timed(step, device))
    mm_flops = 2 * n**3
    step_flops = batch * mlp_train_flops_per_example(in_dim, width, depth, out_dim)
    return {
        "step_flops": step_flops,
        **{f"peak_{k}": mm_flops / f(t_mm) for k, f in (("best", min), ("median", np.median))},
        **{f"mlp_{k}": step_flops / f(t_step) for k, f in (("best", min), ("median", np.median))},
    }


def bench_chinchilla_fit(n_points: int = 250) -> dict | None:
    try:
        from scalinglab.fitting import fit_chinchilla
    except ImportError:  # the scaling-laws module is not there
        return None
    rng = np.random.default_rng(0)
    n = 10 ** rng.uniform(6, 10, n_points)
    d = 10 ** rng.uniform(8, 12, n_points)
    e, a, b, alpha, beta = 1.69, 406.4, 410.7, 0.34, 0.28  # Hoffmann et al. (2022), Eq. 10
    loss = (e + a / n**alpha + b / d**beta) * np.exp(0.01 * rng.standard_normal(n_points))
    t0 = time.perf_counter()
    fit = fit_chinchilla(n, d, loss)
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "fit": fit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} thread(s)")
    t_start = time.perf_counter()

    r = bench_batched_vs_loop(device)
    print(
        f"[1] 32 MLPs x 200 steps: loop {r['loop_s']:.2f} s, batched {r['batched_s']:.2f} s, "
        f"speedup {r['speedup']:.1f}x (budget >= 8x); max |weight diff| {r['max_weight_diff']:.1e}"
    )

    w = bench_wide_mlp_vs_peak(device)
    for stat in ("best", "median"):
        peak, mlp = w[f"peak_{stat}"], w[f"mlp_{stat}"]
        print(
            f"[2] {stat:>6}: matmul peak {peak / 1e9:.1f} GFLOP/s; wide MLP training "
            f"{mlp / 1e9:.1f} GFLOP/s = {100 * mlp / peak:.0f}% of peak "
            f"(budget >= 50%; {w['step_flops'] / 1e9:.1f} GFLOP per step)"
        )

    c = bench_chinchilla_fit()
    if c is None:
        print("[3] scalinglab.fitting.fit_chinchilla not available: skipped")
    else:
        f = c["fit"]
        print(
            f"[3] Chinchilla fit on 250 points: {c['seconds']:.2f} s (budget <= 2 s); "
            f"E={f.E:.3f} A={f.A:.1f} B={f.B:.1f} alpha={f.alpha:.3f} beta={f.beta:.3f} "
            "(true 1.69, 406.4, 410.7, 0.34, 0.28)"
        )
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
