"""The batched ensemble against its members trained one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from scalinglab.engine.ensemble import MLPEnsemble, train_ensemble
from scalinglab.engine.training import train_classifier, train_regressor
from scalinglab.models.mlp import MLP


def _classification_data(seed=0, n=120, n_test=40, in_dim=6, n_classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + n_test, in_dim)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)  # a learnable rule, 3 classes
    return {"x_train": x[:n], "y_train": y[:n], "x_test": x[n:], "y_test": y[n:]}


def _regression_data(seed=0, n=100, n_test=30, in_dim=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + n_test, in_dim)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]) + x[:, 1] * x[:, 2], np.cos(x[:, 3])], 1).astype(np.float32)
    return {"x_train": x[:n], "y_train": y[:n], "x_test": x[n:], "y_test": y[n:]}


def _sequential(net_slice, widths, seeds):
    """Hand-built nn.Sequential with the weights of one ensemble member (the oracle)."""
    ens, m = net_slice
    layers = []
    dims = [ens.in_dim] + [widths[m]] * ens.depth + [ens.out_dim]
    for k, (i, o) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        lin = nn.Linear(i, o)
        lin.weight.data.copy_(ens.weights[k][m, :i, :o].T)
        lin.bias.data.copy_(ens.biases[k][m, :o])
        layers.append(lin)
        if k < ens.depth:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def test_members_start_as_seeded_mlps():
    widths, seeds = [3, 8, 5], [0, 1, 2]
    ens = MLPEnsemble(6, widths, 2, 4, seeds, init="xavier")
    for m, (w, s) in enumerate(zip(widths, seeds, strict=True)):
        ref = MLP(6, w, 2, 4, init="xavier", seed=s)
        for a, b in zip(ens.member(m).parameters(), ref.parameters(), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("shared_inputs", [True, False])
def test_forward_and_backward_match_plain_sequential(shared_inputs):
    widths, seeds = [4, 9, 9, 2], [3, 4, 5, 6]
    ens = MLPEnsemble(5, widths, 2, 3, seeds)
    x = torch.randn(4, 7, 5)
    out = ens(x[0]) if shared_inputs else ens(x)
    assert out.shape == (4, 7, 3)
    out.square().sum().backward()
    for m in range(4):
        ref = _sequential((ens, m), widths, seeds)
        xm = x[0] if shared_inputs else x[m]
        ref_out = ref(xm)
        torch.testing.assert_close(out[m], ref_out)
        ref_out.square().sum().backward()
        # the gradient of member m's slice is the gradient of the standalone network
        lin = [mod for mod in ref if isinstance(mod, nn.Linear)]
        for k, layer in enumerate(lin):
            o, i = layer.weight.shape
            torch.testing.assert_close(ens.weights[k].grad[m, :i, :o], layer.weight.grad.T)
            torch.testing.assert_close(ens.biases[k].grad[m, :o], layer.bias.grad)


def test_padded_units_have_zero_gradient_even_for_sigmoid():
    # sigmoid(0) = 0.5 != 0: the explicit mask, not the activation, must silence padding
    ens = MLPEnsemble(3, [2, 6], 2, 2, [0, 1], activation="sigmoid")
    ens(torch.randn(10, 3)).sum().backward()
    assert ens.weights[0].grad[0, :, 2:].abs().max() == 0
    assert ens.biases[0].grad[0, 2:].abs().max() == 0
    assert ens.weights[1].grad[0, 2:, :].abs().max() == 0
    assert ens.weights[2].grad[0, 2:, :].abs().max() == 0
    assert ens.weights[1].grad[1].abs().max() > 0


@pytest.mark.parametrize(
    ("optimizer", "batch_size", "lr", "weight_decay"),
    [
        ("adamw", None, [1e-2, 3e-3, 1e-3, 1e-2], [0.0, 0.1, 0.5, 1.0]),
        ("adamw", 16, 5e-3, 0.05),
        ("sgd", None, [0.1, 0.05, 0.2, 0.1], 0.01),
        ("sgd", 32, 0.05, [0.0, 0.1, 0.0, 0.3]),
    ],
)
def test_batched_training_equals_sequential(optimizer, batch_size, lr, weight_decay):
    data = _classification_data()
    widths, seeds = [3, 16, 7, 16], [0, 1, 2, 3]  # mixed widths: padding + masking
    ens = MLPEnsemble(6, widths, 2, 3, seeds)
    lrs = np.broadcast_to(lr, 4)
    wds = np.broadcast_to(weight_decay, 4)
    kwargs = {"steps": 40, "optimizer": optimizer, "momentum": 0.9, "batch_size": batch_size}
    hist = train_ensemble(
        ens, data, lr=lr, weight_decay=weight_decay, log_every=20, device="cpu", **kwargs
    )
    assert hist["test_loss"].shape == (3, 4)
    for m, (w, s) in enumerate(zip(widths, seeds, strict=True)):
        net = MLP(6, w, 2, 3, seed=s)
        ref = train_classifier(
            net,
            data,
            lr=float(lrs[m]),
            weight_decay=float(wds[m]),
            seed=s,
            log_every=20,
            device="cpu",
            **kwargs,
        )
        for a, b in zip(ens.member(m).parameters(), net.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        for key in ("train_loss", "test_loss", "train_error", "test_error"):
            np.testing.assert_allclose(hist[key][:, m], ref[key], rtol=1e-4, atol=1e-5)
    # the padding is still exactly zero after training
    assert ens.weights[0][0, :, 3:].abs().max() == 0
    assert ens.weights[1][0, 3:, :].abs().max() == 0


def test_long_adamw_run_on_mnist1d_stays_bit_close():
    # 200 steps is where a differently rounded Adam step size had drifted to 6e-3
    from scalinglab.data.mnist1d import make_mnist1d

    data = make_mnist1d(n_train=1000, n_test=100, seed=0)
    kwargs = {"steps": 200, "lr": 3e-3, "batch_size": 100, "log_every": None, "device": "cpu"}
    ens = MLPEnsemble(40, [32, 32, 32], 1, 10, [0, 1, 2])
    train_ensemble(ens, data, **kwargs)
    for m in range(3):
        net = MLP(40, 32, 1, 10, seed=m)
        train_classifier(net, data, seed=m, **kwargs)
        for a, b in zip(ens.member(m).parameters(), net.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=2e-6)


def test_batched_regression_equals_sequential():
    data = _regression_data()
    widths, seeds = [5, 12], [7, 8]
    ens = MLPEnsemble(5, widths, 1, 2, seeds, activation="tanh")
    hist = train_ensemble(
        ens, data, task="regression", steps=30, lr=1e-2, log_every=10, device="cpu"
    )
    for m, (w, s) in enumerate(zip(widths, seeds, strict=True)):
        ref = train_regressor(
            MLP(5, w, 1, 2, activation="tanh", seed=s),
            data,
            steps=30,
            lr=1e-2,
            log_every=10,
            seed=s,
            device="cpu",
        )
        np.testing.assert_allclose(hist["test_loss"][:, m], ref["test_loss"], rtol=1e-4)
        np.testing.assert_allclose(hist["train_error"][:, m], ref["train_error"], rtol=1e-4)
    # fraction of variance unexplained: MSE / var(y) per output, averaged -- checked by hand
    net = ens.member(0)
    with torch.no_grad():
        pred = net(torch.from_numpy(data["x_test"])).numpy()
    fvu = (((pred - data["y_test"]) ** 2).mean(0) / data["y_test"].var(0)).mean()
    np.testing.assert_allclose(hist["test_error"][-1, 0], fvu, rtol=1e-4)


def test_training_reduces_loss():
    data = _classification_data(n=200)
    ens = MLPEnsemble(6, [32, 32], 1, 3, [0, 1])
    hist = train_ensemble(ens, data, steps=150, lr=1e-2, log_every=150, device="cpu")
    assert (hist["train_loss"][-1] < 0.5 * hist["train_loss"][0]).all()
    assert (hist["test_error"][-1] < 0.2).all()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({"widths": [4, 5], "seeds": [0]}, "same length"),
        ({"widths": [], "seeds": []}, "non-empty"),
        ({"widths": [4, -1], "seeds": [0, 1]}, "width"),
        ({"activation": "swish2"}, "activation"),
        ({"depth": 0}, "depth"),
    ],
)
def test_bad_arguments(args, match):
    base = {"in_dim": 3, "widths": [4, 5], "depth": 1, "out_dim": 2, "seeds": [0, 1]}
    with pytest.raises(ValueError, match=match):
        MLPEnsemble(**{**base, **args})


def test_bad_inputs_and_hyperparameters():
    ens = MLPEnsemble(3, [4, 5], 1, 2, [0, 1])
    with pytest.raises(ValueError, match="expected inputs"):
        ens(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="n_models"):
        ens(torch.zeros(3, 4, 3))
    data = _classification_data(in_dim=3)
    with pytest.raises(ValueError, match="one value per model"):
        train_ensemble(ens, data, steps=1, lr=[0.1, 0.1, 0.1], device="cpu")
    bad = dict(data, y_train=data["y_train"][:-1])
    with pytest.raises(ValueError, match="same number"):
        train_ensemble(ens, bad, steps=1, device="cpu")
