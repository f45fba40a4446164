"""The Markov source's exact quantities against brute force and sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scalinglab.data.markov import MarkovSource
from scalinglab.losses import entropy


def _brute_force_block_entropy(source: MarkovSource, length: int) -> float:
    """H(X_1..X_n) by enumerating every sequence of ``length`` tokens of the stationary
    process: P(x_1..x_n) = pi(first k tokens) * prod P(x_t | previous k)."""
    v, k = source.vocab_size, source.order
    pi = source.stationary()
    h = 0.0
    for seq in itertools.product(range(v), repeat=length):
        ctx = 0
        for tok in seq[:k]:
            ctx = ctx * v + tok
        p = pi[ctx]
        for tok in seq[k:]:
            p *= source.transition[ctx, tok]
            ctx = (ctx * v + tok) % v**k
        if p > 0:
            h -= p * np.log(p)
    return h


@pytest.mark.parametrize("order", [1, 2])
def test_entropy_rate_equals_block_entropy_increments(order):
    """For a stationary order-k chain, H(X_1..X_{n+1}) - H(X_1..X_n) = h for n >= k."""
    source = MarkovSource.random(vocab_size=3, order=order, concentration=0.7, seed=4)
    n = order + 1
    increment = _brute_force_block_entropy(source, n + 1) - _brute_force_block_entropy(source, n)
    assert np.isclose(increment, source.entropy_rate(), atol=1e-10)


def test_stationary_distribution_is_invariant():
    source = MarkovSource.random(vocab_size=5, order=2, concentration=0.5, seed=2)
    pi = source.stationary()
    assert np.all(pi >= 0) and np.isclose(pi.sum(), 1.0)
    np.testing.assert_allclose(pi @ source._context_chain(), pi, atol=1e-12)


def test_two_state_chain_closed_form():
    a, b = 0.1, 0.5
    source = MarkovSource(np.array([[1 - a, a], [b, 1 - b]]))
    np.testing.assert_allclose(source.stationary(), [b / (a + b), a / (a + b)])
    expected = (b * entropy(np.array([1 - a, a])) + a * entropy(np.array([b, 1 - b]))) / (a + b)
    assert np.isclose(source.entropy_rate(), expected)
    assert np.isclose(source.entropy_rate(base=2), expected / np.log(2))


def test_conditional_entropies_decrease_with_context_and_match_samples():
    source = MarkovSource.random(vocab_size=4, order=2, concentration=0.4, seed=7)
    floors = [source.conditional_entropy(c) for c in range(4)]
    assert floors[0] > floors[1] > floors[2]
    assert np.isclose(floors[2], source.entropy_rate()) and np.isclose(floors[3], floors[2])
    assert np.isclose(floors[0], entropy(source.unigram()))
    tokens = source.sample(400, 500, rng=1)
    # empirical conditional entropy with one token of context
    ctx, nxt = source.windows(tokens, 1)
    counts = np.zeros((4, 4))
    np.add.at(counts, (ctx[:, 0], nxt), 1)
    marginal = counts.sum(1) / counts.sum()
    empirical = marginal @ entropy(counts / counts.sum(1, keepdims=True))
    assert abs(empirical - floors[1]) < 0.01
    # the source's own log-loss on a long sample tends to the entropy rate
    assert abs(source.true_log_loss(tokens) - source.entropy_rate()) < 0.01


def test_joint_for_long_contexts_is_consistent():
    source = MarkovSource.random(vocab_size=3, order=1, concentration=0.5, seed=3)
    j3 = source.joint(3)
    assert np.isclose(j3.sum(), 1.0)
    # marginalising the oldest token of a 3-token context gives the 2-token joint
    j2 = np.zeros_like(source.joint(2))
    np.add.at(j2, np.arange(27) % 9, j3)
    np.testing.assert_allclose(j2, source.joint(2), atol=1e-12)
    assert np.isclose(source.conditional_entropy(3), source.entropy_rate())


def test_sampling_is_deterministic_and_matches_frequencies():
    source = MarkovSource.random(vocab_size=6, order=1, seed=0)
    a = source.sample(10, 50, rng=3)
    np.testing.assert_array_equal(a, source.sample(10, 50, rng=3))
    tokens = source.sample(500, 400, rng=0)
    freq = np.bincount(tokens.ravel(), minlength=6) / tokens.size
    np.testing.assert_allclose(freq, source.unigram(), atol=0.01)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="rows"):
        MarkovSource(np.full((3, 3), 1 / 3), order=2)
    with pytest.raises(ValueError, match="probability"):
        MarkovSource(np.array([[0.5, 0.6], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="vocab_size"):
        MarkovSource.random(vocab_size=1)
    with pytest.raises(ValueError):
        MarkovSource.random(4).sample(0, 10)
