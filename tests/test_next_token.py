"""Training on the Markov source approaches the entropy floor and never crosses it."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.data.markov import MarkovSource
from scalinglab.losses import kl_divergence
from scalinglab.next_token import exact_cross_entropy, train_table_model

SOURCE = MarkovSource.random(vocab_size=8, order=2, concentration=0.3, seed=1)


def test_exact_cross_entropy_is_floor_plus_kl():
    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(8), size=8)  # a model with one token of context
    joint = SOURCE.joint(1)
    p_ctx = joint.sum(1)
    expected = SOURCE.conditional_entropy(1) + p_ctx @ kl_divergence(joint / p_ctx[:, None], q)
    assert np.isclose(exact_cross_entropy(SOURCE, 1, np.log(q)), expected)
    assert np.isclose(
        exact_cross_entropy(SOURCE, 2, np.log(SOURCE.transition)), SOURCE.entropy_rate()
    )


@pytest.mark.parametrize("context_length", [0, 1, 2])
def test_trained_model_approaches_but_never_crosses_its_floor(context_length):
    hist = train_table_model(
        SOURCE, context_length, n_train_tokens=40_000, steps=400, lr=0.1, log_every=10, seed=0
    )
    losses = np.array(hist["test_cross_entropy"])
    assert np.isclose(losses[0], np.log(8))  # zero logits: uniform prediction
    assert np.all(losses >= hist["floor"] - 1e-12)
    assert losses[-1] - hist["floor"] < 0.05


def test_l1_training_stalls_from_a_confidently_wrong_start():
    kwargs = dict(n_train_tokens=40_000, steps=400, lr=0.1, init_scale=4.0, log_every=50, seed=0)
    ce = train_table_model(SOURCE, 2, loss="cross_entropy", **kwargs)
    l1 = train_table_model(SOURCE, 2, loss="l1", **kwargs)
    assert ce["test_cross_entropy"][-1] < SOURCE.entropy_rate() + 0.05
    assert l1["test_cross_entropy"][-1] > SOURCE.entropy_rate() + 1.0


def test_same_seed_same_numbers():
    a = train_table_model(SOURCE, 1, n_train_tokens=5_000, steps=50, seed=3)
    b = train_table_model(SOURCE, 1, n_train_tokens=5_000, steps=50, seed=3)
    assert a["test_cross_entropy"] == b["test_cross_entropy"]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="loss"):
        train_table_model(SOURCE, 1, loss="mse")
    with pytest.raises(ValueError, match="shape"):
        exact_cross_entropy(SOURCE, 1, np.zeros((3, 8)))
