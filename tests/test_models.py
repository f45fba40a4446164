"""MLP, TinyTransformer and FLOP counts against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from scalinglab.engine.flops import (
    mlp_forward_flops,
    mlp_train_flops,
    mlp_train_flops_per_example,
    transformer_forward_flops_per_token,
    transformer_train_flops,
)
from scalinglab.models.mlp import MLP, mlp_param_count
from scalinglab.models.transformer import TinyTransformer, causal_attention

# ---------------------------------------------------------------- MLP


@pytest.mark.parametrize("depth", [1, 3])
def test_mlp_matches_hand_built_sequential(depth):
    net = MLP(7, 11, depth, 3, activation="tanh", seed=5)
    ref = nn.Sequential()
    for k, lin in enumerate(net.linears):
        copy = nn.Linear(lin.in_features, lin.out_features)
        copy.load_state_dict(lin.state_dict())
        ref.append(copy)
        if k < depth:
            ref.append(nn.Tanh())
    x = torch.randn(13, 7, requires_grad=True)
    torch.testing.assert_close(net(x), ref(x))
    (g,) = torch.autograd.grad(net(x).square().sum(), x)
    (g_ref,) = torch.autograd.grad(ref(x).square().sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_mlp_param_count_and_seed():
    net = MLP(40, 25, 2, 10, seed=3)
    assert net.n_params == sum(p.numel() for p in net.parameters())
    assert net.n_params == (40 + 1) * 25 + (25 + 1) * 25 + (25 + 1) * 10
    assert net.n_params == mlp_param_count(40, 25, 2, 10)
    again = MLP(40, 25, 2, 10, seed=3)
    other = MLP(40, 25, 2, 10, seed=4)
    for a, b, c in zip(net.parameters(), again.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
        assert a.abs().sum() == 0 or not torch.equal(a, c)


@pytest.mark.parametrize(
    ("init", "std"),
    [
        ("kaiming", math.sqrt(2 / 400)),
        ("xavier", math.sqrt(2 / (400 + 300))),
        ("normal", 0.7),
        ("torch", 1 / math.sqrt(3 * 400)),  # uniform(-b, b) has std b / sqrt(3)
    ],
)
def test_init_scales(init, std):
    net = MLP(400, 300, 1, 300, init=init, seed=0, init_std=0.7)
    w = net.linears[0].weight
    assert abs(w.std().item() / std - 1) < 0.02  # 120k samples: relative error ~ 0.3%
    assert abs(w.mean().item()) < 0.01 * std * 10


def test_kaiming_keeps_relu_activations_stable_and_normal_explodes():
    x = torch.randn(512, 256)
    he = MLP(256, 256, 10, 1, init="kaiming", seed=0).hidden(x)
    naive = MLP(256, 256, 10, 1, init="normal", init_std=1.0, seed=0).hidden(x)
    ratio_he = he[-1].pow(2).mean() / he[0].pow(2).mean()
    ratio_naive = naive[-1].pow(2).mean() / naive[0].pow(2).mean()
    assert 0.3 < ratio_he < 3  # E||h||^2 preserved by the factor 2/fan_in
    assert ratio_naive > 1e10  # grows like (256/2)^9


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": -1},
        {"width": 0},
        {"width": 2.5},
        {"depth": 0},
        {"activation": "swishy"},
        {"init": "orthogonal"},
    ],
)
def test_mlp_bad_arguments(kwargs):
    args = {"in_dim": 4, "width": 8, "depth": 1, "out_dim": 2, **kwargs}
    with pytest.raises(ValueError):
        MLP(**args)


def test_mlp_wrong_input_shape():
    with pytest.raises(ValueError, match="last dimension"):
        MLP(4, 8, 1, 2)(torch.zeros(3, 5))


# ---------------------------------------------------------------- FLOPs


@pytest.mark.parametrize(("in_dim", "width", "depth", "out_dim"), [(40, 32, 1, 10), (8, 17, 3, 2)])
def test_mlp_flops_match_torch_flop_counter(in_dim, width, depth, out_dim):
    net = MLP(in_dim, width, depth, out_dim, seed=0)
    batch = 9
    x = torch.randn(batch, in_dim)
    with FlopCounterMode(display=False) as fwd:
        net(x)
    assert fwd.get_total_flops() == batch * mlp_forward_flops(in_dim, width, depth, out_dim)
    with FlopCounterMode(display=False) as train:
        net(x).sum().backward()
    expected = mlp_train_flops(in_dim, width, depth, out_dim, batch)
    assert train.get_total_flops() == expected
    assert expected == batch * mlp_train_flops_per_example(in_dim, width, depth, out_dim)


def test_transformer_flops_close_to_flop_counter():
    model = TinyTransformer(vocab_size=8, d_model=128, n_layers=2, n_heads=4, context_length=8)
    tokens = torch.randint(0, 8, (4, 8))
    with FlopCounterMode(display=False) as fwd:
        model(tokens)
    n = model.n_params_non_embedding
    approx = transformer_forward_flops_per_token(n, 2, 8, 128) * tokens.numel()
    # Kaplan's count ignores the unembedding and halves attention for causality: within 5%.
    assert abs(fwd.get_total_flops() / approx - 1) < 0.05
    assert transformer_train_flops(n, tokens.numel()) == 3 * (2 * n) * tokens.numel()


# ---------------------------------------------------------------- transformer


def test_causal_attention_matches_sdpa():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 5, generator=g) for _ in range(3))
    torch.testing.assert_close(
        causal_attention(q, k, v), F.scaled_dot_product_attention(q, k, v, is_causal=True)
    )


def test_attention_layer_matches_multihead_attention():
    model = TinyTransformer(
        vocab_size=5, d_model=16, n_layers=1, n_heads=4, context_length=9, seed=1
    )
    attn = model.blocks[0].attn
    with torch.no_grad():  # non-zero biases so that they are tested too
        attn.qkv.bias.normal_()
        attn.proj.bias.normal_()
    ref = nn.MultiheadAttention(16, 4, batch_first=True)
    ref.in_proj_weight.data.copy_(attn.qkv.weight)
    ref.in_proj_bias.data.copy_(attn.qkv.bias)
    ref.out_proj.weight.data.copy_(attn.proj.weight)
    ref.out_proj.bias.data.copy_(attn.proj.bias)
    x = torch.randn(3, 9, 16)
    mask = torch.ones(9, 9, dtype=torch.bool).triu(1)  # True = may not attend
    expected, _ = ref(x, x, x, attn_mask=mask, need_weights=False)
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_transformer_is_causal():
    model = TinyTransformer(
        vocab_size=6, d_model=32, n_layers=2, n_heads=2, context_length=10, seed=0
    )
    tokens = torch.randint(0, 6, (2, 10), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 6
    a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])  # the past does not see the future
    assert (a[:, 6:] - b[:, 6:]).abs().amax() > 1e-4  # the present and future do
    # gradient check: logits at position 3 depend on no token after 3
    emb = model.tok_emb(tokens).detach().requires_grad_(True)
    pos = model.pos_emb(torch.arange(10))
    x = emb + pos
    for block in model.blocks:
        x = block(x)
    (grad,) = torch.autograd.grad(model.unembed(model.ln_f(x))[:, 3].sum(), emb)
    assert grad[:, 4:].abs().amax() == 0
    assert grad[:, :4].abs().amax() > 0


def test_transformer_shapes_param_counts_and_residuals():
    d, layers, d_mlp, vocab, ctx = 24, 3, 40, 7, 12
    model = TinyTransformer(vocab, d, layers, n_heads=3, context_length=ctx, d_mlp=d_mlp, seed=0)
    per_block = (
        (3 * d * d + 3 * d) + (d * d + d) + 2 * 2 * d + (d * d_mlp + d_mlp) + (d_mlp * d + d)
    )
    assert model.n_params_non_embedding == layers * per_block + 2 * d
    assert model.n_params == model.n_params_non_embedding + vocab * d + ctx * d + d * vocab + vocab
    logits, residuals = model(torch.zeros(5, 4, dtype=torch.long), return_residuals=True)
    assert logits.shape == (5, 4, vocab)
    assert len(residuals) == layers + 1 and residuals[-1].shape == (5, 4, d)


@pytest.mark.parametrize(
    "kwargs",
    [{"d_model": 10, "n_heads": 3}, {"n_layers": 0}, {"vocab_size": -2}, {"context_length": 0}],
)
def test_transformer_bad_arguments(kwargs):
    args = {"vocab_size": 5, "d_model": 12, "n_layers": 1, "n_heads": 2, "context_length": 4}
    with pytest.raises(ValueError):
        TinyTransformer(**{**args, **kwargs})


def test_transformer_rejects_too_long_sequences():
    model = TinyTransformer(5, 8, 1, 2, context_length=4)
    with pytest.raises(ValueError, match="context_length"):
        model(torch.zeros(1, 5, dtype=torch.long))


# ---------------------------------------------------------------- sequence training


def test_train_next_token_reports_the_cross_entropy_of_shifted_tokens():
    from scalinglab.data.hmm import Mess3
    from scalinglab.engine.training import train_next_token

    rng = np.random.default_rng(0)
    mess3 = Mess3()
    train, _ = mess3.sample(64, 9, rng)
    test, _ = mess3.sample(32, 9, rng)
    model = TinyTransformer(3, 16, 1, 2, context_length=8, seed=0)
    with torch.no_grad():  # the oracle: logits at t against token t + 1
        logits = model(torch.from_numpy(test[:, :-1]))
        expected = F.cross_entropy(logits.reshape(-1, 3), torch.from_numpy(test[:, 1:]).reshape(-1))
    hist = train_next_token(
        model, {"train": train, "test": test}, steps=60, lr=1e-2, log_every=30, device="cpu"
    )
    assert hist["step"] == [0, 30, 60]
    assert hist["test_loss"][0] == pytest.approx(expected.item(), rel=1e-5)
    # it learns: below the unigram entropy ln 3, and never below the exact floor
    floor = mess3.conditional_entropy(8)
    assert hist["train_loss"][-1] < np.log(3) - 0.005
    assert hist["test_loss"][-1] > floor - 0.05


def test_last_position_classifier_learns_modular_addition_table():
    from scalinglab.data.modular import modular_arithmetic_dataset
    from scalinglab.engine.training import train_classifier
    from scalinglab.models.transformer import LastPosition

    data = modular_arithmetic_dataset(p=7, op="+", train_fraction=0.9, seed=0)
    model = LastPosition(TinyTransformer(8, 32, 1, 4, context_length=3, seed=0))
    assert model(torch.from_numpy(data["x_train"][:5])).shape == (5, 8)
    hist = train_classifier(model, data, steps=150, lr=1e-2, log_every=None, device="cpu")
    assert hist["train_error"][-1] < 0.5 * hist["train_error"][0]
