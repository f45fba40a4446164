"""Chapter 2's depth experiment: the shipped learning-rate sweep against the claims of the
page, a live slice of it, the batched residual networks against the plain module, and the
kernel that sets each depth's learning rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scalinglab.double_descent import load_records, shipped_config
from scalinglab.engine.ensemble import train_ensemble
from scalinglab.engine.sweep_config import load_dataset
from scalinglab.models.mlp import MLP
from scalinglab.trainability import ResidualEnsemble, ResidualMLP, depth_records, ntk_trace

ARCHS = ("kaiming", "xavier", "residual")


@pytest.fixture(scope="module")
def sweep():
    """``{(arch, depth): (lrs, mean final loss over seeds, s.d., per-seed losses)}``."""
    config = shipped_config("ch02_depth")
    final = {}
    for r in load_records("ch02_depth"):
        if r["step"] == config["grid"]["steps"]:
            loss = math.inf if r["train_loss"] is None else r["train_loss"]
            final.setdefault((r["architecture"], r["depth"], r["lr"]), []).append(loss)
    lrs = [2.0**e for e in config["grid"]["log2_lrs"]]
    out = {}
    for arch in ARCHS:
        for depth in config["runs"][0]["depths"]:
            per_seed = np.array([final[arch, depth, lr] for lr in lrs])  # (lr, seed)
            out[arch, depth] = (np.array(lrs), per_seed.mean(axis=1), per_seed)
    return config, out


def best(entry):
    lrs, mean, per_seed = entry
    k = int(np.argmin(np.where(np.isfinite(mean), mean, np.inf)))
    return lrs[k], mean[k], per_seed[k]


def test_records_cover_the_config(sweep):
    config, _ = sweep
    recs = load_records("ch02_depth")
    grid = config["grid"]
    n_logs = grid["steps"] // grid["log_every"] + 1
    expected = len(ARCHS) * len(config["runs"][0]["depths"]) * len(grid["log2_lrs"])
    assert len(recs) == expected * len(grid["seeds"]) * n_logs
    assert {r["lr"] for r in recs} == {2.0**e for e in grid["log2_lrs"]}


def test_residual_ensemble_starts_as_the_residual_module():
    torch.set_num_threads(1)
    ens = ResidualEnsemble(64, 32, 6, 10, [3, 5])
    x = torch.randn(20, 64)
    for m, seed in enumerate([3, 5]):
        net = ResidualMLP(64, 32, 6, 10, seed=seed)
        with torch.no_grad():
            assert torch.allclose(ens(x)[m], net(x), atol=1e-5)
            assert torch.allclose(ens(x.expand(2, 20, 64))[m], net(x), atol=1e-5)


def test_residual_ensemble_trains_like_the_module():
    # one SGD-with-momentum step of the batched residual net against torch.optim.SGD
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    data = {"x_train": rng.normal(size=(40, 8)).astype(np.float32), "y_train": rng.integers(0, 3, 40),
            "x_test": rng.normal(size=(10, 8)).astype(np.float32), "y_test": rng.integers(0, 3, 10)}  # fmt: skip
    ens = ResidualEnsemble(8, 16, 4, 3, [7])
    train_ensemble(ens, data, steps=3, lr=0.05, optimizer="sgd", momentum=0.9, log_every=None)
    net = ResidualMLP(8, 16, 4, 3, seed=7)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.tensor(data["x_train"]), torch.tensor(data["y_train"])
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    with torch.no_grad():
        assert torch.allclose(ens(x)[0], net(x), atol=1e-5)


def test_live_slice_reproduces_the_records():
    torch.set_num_threads(1)
    config = shipped_config("ch02_depth")
    data = load_dataset(config["dataset"])
    grid = {k: v for k, v in config["grid"].items() if k != "log2_lrs"}
    grid.update(seeds=[0], steps=50, log_every=50)
    shipped = {
        (r["architecture"], r["step"]): r
        for r in load_records("ch02_depth")
        if (r["depth"], r["seed"], r["lr"]) == (4, 0, 2.0**-5)
    }
    for rec in depth_records(data, [4], ["kaiming", "residual"], lrs=[2.0**-5], **grid):
        # one member instead of 33 in the batched matmuls: float rounding only
        twin = shipped[rec["architecture"], rec["step"]]
        assert rec["train_loss"] == pytest.approx(twin["train_loss"], rel=1e-4)


def test_residual_branches_keep_the_second_moment_bounded():
    torch.set_num_threads(1)
    for depth in (10, 30, 100):
        net = ResidualMLP(64, 512, depth, 10, seed=1)
        h = net.inp(torch.randn(256, 64))
        q0 = h.pow(2).mean().item()
        with torch.no_grad():
            for block in net.blocks:
                h = h + net.branch_scale * block(torch.relu(h))
        # theory: (1 + 1/L)^(L-1) < e; allow 15% for the finite-width fluctuations
        ratio = h.pow(2).mean().item() / q0
        assert 1.0 < ratio < math.e * 1.15


def test_ntk_trace_against_autograd_jacobian_and_its_growth_with_depth():
    torch.set_num_threads(1)
    net = MLP(6, 5, 2, 3, seed=0)
    x = torch.randn(4, 6)
    jac = torch.autograd.functional.jacobian(
        lambda *ps: torch.func.functional_call(
            net, dict(zip(dict(net.named_parameters()), ps)), (x,)
        ),
        tuple(net.parameters()),
    )
    # sum over outputs and parameters of (d f_k(x_i) / d theta)^2, mean over the inputs
    ref = sum(float(j.pow(2).sum()) for j in jac) / len(x)
    assert ntk_trace(net, x) == pytest.approx(ref, rel=1e-5)
    # the page: the plain network's kernel grows with depth, the residual one's much less
    data = load_dataset(shipped_config("ch02_depth")["dataset"])
    xs = torch.tensor(np.asarray(data["x_train"][:8]), dtype=torch.float32)
    plain = [
        np.mean([ntk_trace(MLP(64, 128, d, 10, seed=s), xs) for s in range(3)]) for d in (2, 32)
    ]
    res = [
        np.mean([ntk_trace(ResidualMLP(64, 128, d, 10, seed=s), xs) for s in range(3)])
        for d in (2, 32)
    ]
    assert plain[1] / plain[0] > 5  # measured 8.7
    assert res[1] / res[0] < 3  # measured 2.3
