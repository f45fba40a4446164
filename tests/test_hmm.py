"""Mess3: probabilities, belief states and entropies against brute-force enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scalinglab.data.hmm import MESS3_LIBRARY, MESS3_PAPER, HiddenMarkovModel, Mess3

X, ALPHA = 0.05, 0.85  # Shai et al. (2024), the package default


def _brute_force(model, tokens):
    """P(x_1..L) and P(s_L | x_1..L) by summing over every hidden path s_0..s_L."""
    t = model.transition_matrices
    s = model.n_states
    prob, joint_last = 0.0, np.zeros(s)
    for path in itertools.product(range(s), repeat=len(tokens) + 1):
        p = model.stationary[path[0]]
        for k, tok in enumerate(tokens):
            p *= t[tok, path[k], path[k + 1]]
        prob += p
        joint_last[path[-1]] += p
    return prob, joint_last / prob


def test_mess3_matrices_from_the_definition():
    m = Mess3(X, ALPHA)
    beta, y = (1 - ALPHA) / 2, 1 - 2 * X
    # token 0 emitted on arrival in state 0 (alpha) after staying (y) or jumping (x)
    assert m.transition_matrices[0, 0, 0] == pytest.approx(ALPHA * y)
    assert m.transition_matrices[0, 1, 0] == pytest.approx(ALPHA * X)
    assert m.transition_matrices[0, 1, 1] == pytest.approx(beta * y)
    assert m.transition_matrices[2, 0, 1] == pytest.approx(beta * X)
    np.testing.assert_allclose(m.transition_matrices.sum(axis=(0, 2)), 1.0)
    np.testing.assert_allclose(m.stationary, 1 / 3)  # symmetric process


def test_default_is_the_papers_mess3_written_out():
    # Shai et al. (2024), arXiv:2405.15943, Mess3 with x = 0.05, alpha = 0.85:
    # T[a, i, j] = P(i -> j) P(a | j) with P(stay) = 0.9, P(jump to each other) = 0.05,
    # P(a | j) = 0.85 if a == j else 0.075 -- the same layout as the authors' code
    # (epsilon-transformers, ``mess3``). Written out by hand, not from the formula.
    t_a = np.array(
        [[0.765, 0.00375, 0.00375], [0.0425, 0.0675, 0.00375], [0.0425, 0.00375, 0.0675]]
    )
    t_b = np.array(
        [[0.0675, 0.0425, 0.00375], [0.00375, 0.765, 0.00375], [0.00375, 0.0425, 0.0675]]
    )
    t_c = np.array(
        [[0.0675, 0.00375, 0.0425], [0.00375, 0.0675, 0.0425], [0.00375, 0.00375, 0.765]]
    )
    m = Mess3()
    assert (m.x, m.alpha) == (MESS3_PAPER["x"], MESS3_PAPER["alpha"]) == (0.05, 0.85)
    np.testing.assert_allclose(m.transition_matrices, np.stack([t_a, t_b, t_c]), atol=1e-15)
    # the library default is still there under its own name
    old = Mess3(**MESS3_LIBRARY)
    assert old.transition_matrices[0, 0, 0] == pytest.approx(0.6 * 0.7)


def test_entropy_rates_of_the_two_parameter_sets():
    # h = lim H(X_L | X_<L); the conditional entropies converge geometrically, so L = 12
    # is converged to < 1e-6 nats (checked by the difference of successive terms).
    paper, library = Mess3(), Mess3(**MESS3_LIBRARY)
    h12, h11 = paper.conditional_entropy(12), paper.conditional_entropy(11)
    assert h11 - h12 < 1e-6
    assert h12 == pytest.approx(0.79346, abs=1e-4)  # ~0.31 nats below ln 3: much to learn
    assert np.log(3) - h12 > 0.3
    # the library default leaves only ~0.01 nats between i.i.d. guessing and the optimum
    assert np.log(3) - library.conditional_entropy(10) == pytest.approx(0.0097, abs=5e-4)


@pytest.mark.parametrize("length", [1, 3, 5])
def test_beliefs_and_probabilities_match_brute_force(length):
    m = Mess3(X, ALPHA)
    blocks = np.array(list(itertools.product(range(3), repeat=length)))
    beliefs = m.belief_states(blocks)
    logp = m.log_prob(blocks)
    total = 0.0
    for k, tokens in enumerate(blocks):
        p, posterior = _brute_force(m, tokens)
        np.testing.assert_allclose(beliefs[k, -1], posterior, rtol=1e-10)
        np.testing.assert_allclose(np.exp(logp[k]), p, rtol=1e-10)
        total += p
    assert total == pytest.approx(1.0)
    # intermediate beliefs are the beliefs of the prefixes
    np.testing.assert_allclose(beliefs[:, 0], m.belief_states(blocks[:, :1])[:, 0])


def test_next_token_probs_are_conditional_probabilities():
    m = Mess3(X, ALPHA)
    prefix = np.array([2, 0, 0, 1])
    eta = m.belief_states(prefix)[0, -1]
    p_prefix, _ = _brute_force(m, prefix)
    expected = [_brute_force(m, np.append(prefix, a))[0] / p_prefix for a in range(3)]
    np.testing.assert_allclose(m.next_token_probs(eta), expected, rtol=1e-10)


def test_block_and_conditional_entropy_match_enumeration():
    m = Mess3(X, ALPHA)
    for length in (1, 2, 4):
        probs = [_brute_force(m, b)[0] for b in itertools.product(range(3), repeat=length)]
        h = -sum(p * np.log(p) for p in probs)
        assert m.block_entropy(length) == pytest.approx(h, rel=1e-10)
    # H(X_1) = ln 3 by symmetry; conditioning on more history can only reduce entropy
    assert m.conditional_entropy(1) == pytest.approx(np.log(3))
    cond = [m.conditional_entropy(n) for n in range(1, 8)]
    assert all(a >= b - 1e-12 for a, b in zip(cond, cond[1:]))
    assert cond[-1] < np.log(3) - 0.005


def test_monte_carlo_entropy_rate_agrees_with_exact_conditional_entropy():
    m = Mess3(X, ALPHA)
    h_mc, se = m.entropy_rate_mc(np.random.default_rng(0), n_seq=64, length=1500)
    h_10 = m.conditional_entropy(10)  # an upper bound, converged to ~1e-6 for Mess3
    assert h_10 - m.conditional_entropy(9) < 1e-5
    assert abs(h_mc - h_10) < 4 * se + 1e-4


def test_sampling_frequencies_match_block_probabilities():
    m = Mess3(X, ALPHA)
    tokens, states = m.sample(40000, 2, np.random.default_rng(1))
    assert tokens.shape == states.shape == (40000, 2)
    counts = np.zeros((3, 3))
    np.add.at(counts, (tokens[:, 0], tokens[:, 1]), 1)
    expected = np.exp(m.log_prob(np.array(list(itertools.product(range(3), repeat=2)))))
    observed = counts.ravel() / counts.sum()
    sigma = np.sqrt(expected * (1 - expected) / 40000)
    assert np.all(np.abs(observed - expected) < 5 * sigma)
    # the emitted token equals the state it arrives in with probability alpha
    assert np.mean(tokens == states) == pytest.approx(ALPHA, abs=0.01)
    # same seed, same samples
    again, _ = m.sample(40000, 2, np.random.default_rng(1))
    assert np.array_equal(tokens, again)


def test_beliefs_are_calibrated_posteriors_of_the_hidden_state():
    m = Mess3(X, ALPHA)
    tokens, states = m.sample(2000, 20, np.random.default_rng(2))
    beliefs = m.belief_states(tokens)
    np.testing.assert_allclose(beliefs.sum(-1), 1.0)
    # A correct posterior is calibrated: since P(s = j | x) = eta_j, the expected belief in
    # the true state is E[sum_j eta_j^2]. Both sides are means over 40k positions.
    p_true = np.take_along_axis(beliefs, states[..., None], -1)[..., 0]
    expected = (beliefs**2).sum(-1)
    se = p_true.std() / np.sqrt(p_true.size / 20)  # positions of one sequence correlate
    assert abs(p_true.mean() - expected.mean()) < 4 * se
    assert p_true.mean() > 1 / 3 + 0.05  # and it beats guessing


def test_bad_arguments():
    with pytest.raises(ValueError):
        Mess3(x=0.7)
    with pytest.raises(ValueError):
        Mess3(alpha=1.5)
    with pytest.raises(ValueError):
        HiddenMarkovModel(np.ones((2, 3, 3)))  # rows do not sum to one
    with pytest.raises(ValueError):
        Mess3().belief_states(np.array([[0, 3]]))
    with pytest.raises(ValueError):
        Mess3().sample(0, 5, np.random.default_rng(0))
