"""Chapter 2's depth experiment: the shipped records against the claims of the page, a live
slice of them, and the residual network's second moment."""

from __future__ import annotations

import math

import pytest
import torch

from scalinglab.double_descent import load_records, shipped_config
from scalinglab.engine.sweep_config import load_dataset
from scalinglab.trainability import ResidualMLP, depth_records


@pytest.fixture(scope="module")
def final():
    config = shipped_config("ch02_depth")
    out = {}
    for r in load_records("ch02_depth"):
        if r["step"] == config["grid"]["steps"]:
            loss = math.inf if r["train_loss"] is None else r["train_loss"]
            out.setdefault((r["architecture"], r["depth"]), []).append(loss)
    return out


def test_records_cover_the_config(final):
    config = shipped_config("ch02_depth")
    n = len(config["grid"]["seeds"])
    expected = {
        (a, d) for run in config["runs"] for a in run["architectures"] for d in run["depths"]
    }
    assert set(final) == expected
    assert all(len(v) == n for v in final.values())


def test_depth_claims_of_the_page(final):
    chance = math.log(10)  # cross-entropy of a uniform guess over 10 digits
    # depth 10: He fits the training set on every seed, Xavier stalls on most
    assert max(final["kaiming", 10]) < 0.01
    assert sum(v > 0.5 * chance for v in final["xavier", 10]) >= 2
    # depth 30: both plain networks fail on every seed; the residual network trains
    assert min(final["kaiming", 30]) > 0.5
    assert min(final["xavier", 30]) > 0.5
    assert max(final["residual", 30]) < 0.05


def test_live_slice_reproduces_the_records():
    torch.set_num_threads(1)
    config = shipped_config("ch02_depth")
    data = load_dataset(config["dataset"])
    grid = {**config["grid"], "seeds": [0], "steps": 25, "log_every": 25}
    live = depth_records(data, [10], ["kaiming"], **grid)
    shipped = {
        r["step"]: r
        for r in load_records("ch02_depth")
        if (r["architecture"], r["depth"], r["seed"]) == ("kaiming", 10, 0)
    }
    for rec in live:
        # one member instead of three in the batched matmul: float rounding only
        assert rec["train_loss"] == pytest.approx(shipped[rec["step"]]["train_loss"], rel=1e-4)


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
