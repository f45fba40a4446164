"""Double-descent helpers: parameter counts vs torch, peak finding, shipped MLP records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from scalinglab.double_descent import (
    interpolation_threshold,
    load_records,
    locate_peak,
    mean_curve,
    mlp_param_count,
    mnist1d_with_label_noise,
    run_width_sweep,
    width_for_param_count,
)


def torch_mlp_params(in_dim, width, depth, out_dim):
    """Independent count: build the network with torch.nn and count its tensors."""
    dims = [in_dim] + [width] * depth + [out_dim]
    layers = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)]
    return sum(p.numel() for layer in layers for p in layer.parameters())


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("n_params", [500, 4000, 12345])
def test_width_for_param_count_inverts_the_torch_count(depth, n_params):
    w = width_for_param_count(n_params, 40, depth, 10)
    lo, hi = math.floor(w), math.ceil(w)
    assert torch_mlp_params(40, lo, depth, 10) <= n_params <= torch_mlp_params(40, hi, depth, 10)
    assert mlp_param_count(40, hi, depth, 10) == torch_mlp_params(40, hi, depth, 10)


def test_greydanus_mnist1d_peak_is_where_parameters_match_examples():
    # greydanus/mnist1d, notebooks/6. deep_double_descent.ipynb: 40 -> w -> w -> 10 MLP,
    # 4000 training examples with 15% label noise; the published test-error peak is near
    # w = 47, i.e. N = 4663 parameters -- the same order as n = 4000.
    assert torch_mlp_params(40, 47, 2, 10) == 4663
    predicted = width_for_param_count(4000, 40, 2, 10)
    assert predicted == pytest.approx(42.3, abs=0.1)
    assert 0.8 * 47 <= predicted <= 1.2 * 47


def test_width_for_param_count_rejects_impossible_targets():
    with pytest.raises(ValueError):
        width_for_param_count(5, 40, 1, 10)


def test_locate_peak_skips_the_underparameterized_side():
    xs = np.arange(1, 11)
    ys = np.array([0.9, 0.6, 0.4, 0.45, 0.7, 0.95, 0.5, 0.35, 0.3, 0.28])
    assert locate_peak(xs, ys) == 6  # not x = 1, the global maximum
    assert locate_peak(xs, -np.arange(10.0)) == 10  # monotone: no peak, last point
    with pytest.raises(ValueError):
        locate_peak([3, 2, 1], [1, 2, 3])


def test_interpolation_threshold():
    xs = [2, 4, 8, 16, 32]
    assert interpolation_threshold(xs, [0.5, 0.3, 0.01, 0.0, 0.0]) == 16
    assert interpolation_threshold(xs, [0.5, 0.3, 0.01, 0.0, 0.0], tol=0.02) == 8
    assert interpolation_threshold(xs, [0.5, 0.4, 0.3, 0.2, 0.1]) is None


def test_mean_curve_averages_seeds_and_filters():
    records = [
        dict(width=w, seed=s, label_noise=noise, test_error=w + s + 10 * noise)
        for w in (4, 2)
        for s in (0, 1, 2)
        for noise in (0.0, 0.5)
    ]
    xs, mean, sem = mean_curve(records, label_noise=0.5)
    np.testing.assert_array_equal(xs, [2, 4])
    np.testing.assert_allclose(mean, [2 + 1 + 5, 4 + 1 + 5])
    np.testing.assert_allclose(sem, np.std([0, 1, 2], ddof=1) / np.sqrt(3))
    with pytest.raises(ValueError):
        mean_curve(records, label_noise=0.25)


def test_label_noise_flips_the_requested_fraction_and_keeps_test_labels_clean():
    clean = mnist1d_with_label_noise(600, n_test=200, label_noise=0.0, seed=0)
    noisy = mnist1d_with_label_noise(600, n_test=200, label_noise=0.3, seed=0)
    np.testing.assert_array_equal(clean["x_train"], noisy["x_train"])
    np.testing.assert_array_equal(clean["y_test"], noisy["y_test"])
    assert noisy["flipped"].mean() == pytest.approx(0.3, abs=0.06)
    changed = clean["y_train"] != noisy["y_train"]
    assert not changed[~noisy["flipped"]].any()
    # A uniform redraw keeps the old label 1 time in 10.
    assert changed[noisy["flipped"]].mean() == pytest.approx(0.9, abs=0.07)


def test_run_width_sweep_is_deterministic_and_counts_parameters():
    threads = torch.get_num_threads()
    kw = dict(widths=[3, 9], n_trains=[100], label_noise=0.2, steps=20, log_every=10, n_test=100)
    a = run_width_sweep(**kw, progress=False)
    b = run_width_sweep(**kw, progress=False)
    assert torch.get_num_threads() == threads  # one thread inside, restored afterwards
    assert [r["test_error"] for r in a] == [r["test_error"] for r in b]
    for r in a:
        assert r["n_params"] == torch_mlp_params(40, r["width"], 1, 10)
        assert r["history"]["step"] == [10, 20]
        assert r["history"]["test_error"][-1] == r["test_error"]
    assert a[0]["experiment"] == ""


SHIPPED = "ch06_mlp_sweep"


@pytest.fixture(scope="module")
def shipped():
    return load_records(SHIPPED)


def test_shipped_records_peak_near_the_parameter_count_threshold(shipped):
    # The chapter's claim: with 15% label noise the test error peaks where the MLP
    # can first interpolate, and that width is where N(w) is of the order of n.
    n_train = 1000
    where = dict(experiment="model-wise", label_noise=0.15, n_train=n_train)
    xs, test, _ = mean_curve(shipped, **where)
    _, train, _ = mean_curve(shipped, y="train_error", **where)
    predicted = width_for_param_count(n_train, 40, 1, 10)
    peak = locate_peak(xs, test)
    threshold = interpolation_threshold(xs, train, tol=0.01)
    assert 0.5 * predicted <= peak <= 2.5 * predicted
    assert 0.5 * predicted <= threshold <= 2.5 * predicted
    # The peak is a real bump: higher than the sweet spot before it and the widest model.
    i = list(xs).index(peak)
    assert test[i] > test[-1] + 0.02
    assert test[i] > test[:i].min() + 0.02


def test_shipped_records_label_noise_raises_the_curve_and_delays_interpolation(shipped):
    curves = {}
    for noise in (0.0, 0.15):
        where = dict(experiment="model-wise", label_noise=noise, n_train=1000)
        xs, test, _ = mean_curve(shipped, **where)
        _, train, _ = mean_curve(shipped, y="train_error", **where)
        curves[noise] = (xs, test, interpolation_threshold(xs, train, tol=0.01))
    np.testing.assert_array_equal(curves[0.0][0], curves[0.15][0])
    assert np.all(curves[0.0][1] < curves[0.15][1])  # every width is better without noise
    assert curves[0.0][2] < curves[0.15][2]  # clean labels are fitted at a smaller width
    # The bump (peak after the sweet spot, above the widest model) is smaller without noise.
    bump = {
        noise: test[list(xs).index(locate_peak(xs, test))] - test[-1]
        for noise, (xs, test, _) in curves.items()
    }
    assert bump[0.0] < bump[0.15]


def test_shipped_records_sample_wise_more_data_hurts_near_the_threshold(shipped):
    ns, test, _ = mean_curve(shipped, x="n_train", experiment="sample-wise")
    _, train, _ = mean_curve(shipped, x="n_train", y="train_error", experiment="sample-wise")
    n_params = mlp_param_count(40, 24, 1, 10)
    assert {r["width"] for r in shipped if r["experiment"] == "sample-wise"} == {24}
    # Interpolates every training set smaller than ~ its parameter count, none much larger.
    assert np.all(train[ns < 0.8 * n_params] <= 0.01)
    assert np.all(train[ns > 1.2 * n_params] > 0.1)
    # The page's claim: 1100 examples give a worse model than 900.
    test_at = dict(zip(ns.tolist(), test, strict=True))
    assert test_at[1100] > test_at[900] + 0.02
    assert test[-1] < test_at[900]  # and plenty of data still wins


def test_shipped_records_epoch_wise_the_threshold_model_gets_worse_with_training(shipped):
    def mean_history(width, key):
        hist = [
            r["history"]
            for r in shipped
            if r["experiment"] == "model-wise" and r["label_noise"] == 0.15 and r["width"] == width
        ]
        return np.array(hist[0]["step"]), np.mean([h[key] for h in hist], axis=0)

    steps, test = mean_history(24, "test_error")
    best = int(np.argmin(test))
    assert steps[best] < 1000  # best after a few hundred steps ...
    assert test[-1] > test[best] + 0.03  # ... then memorizing the noise makes it worse
    for width in (64, 256):  # wide models interpolate within a few hundred steps
        steps, train = mean_history(width, "train_error")
        assert steps[np.flatnonzero(train <= 0.01)[0]] <= 500
