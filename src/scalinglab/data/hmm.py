"""Hidden Markov model sources with exact Bayesian belief states; Mess3 (Shai et al. 2024).

An edge-emitting HMM with hidden states :math:`s \\in \\{1..S\\}` and tokens
:math:`a \\in \\{1..V\\}` is given by one matrix per token,

.. math::

    T^{(a)}_{ij} = P(\\text{emit } a,\\ s_{t+1} = j \\mid s_t = i), \\qquad
    \\textstyle\\sum_a \\sum_j T^{(a)}_{ij} = 1 .

The probability of a token sequence sums over all hidden paths, which the forward algorithm
does in matrix products: :math:`P(x_{1:L}) = \\pi\\, T^{(x_1)} \\cdots T^{(x_L)} \\mathbf{1}` with
:math:`\\pi` the stationary distribution of :math:`T = \\sum_a T^{(a)}`.

Belief states
-------------
An observer who knows the model but sees only tokens holds a posterior over the hidden
state, the *belief* :math:`\\eta_t(j) = P(s_{t} = j \\mid x_{1:t})` (a point of the probability
simplex). Bayes' rule updates it one token at a time:

.. math::

    \\eta_0 = \\pi, \\qquad \\eta_t = \\frac{\\eta_{t-1} T^{(x_t)}}{\\eta_{t-1} T^{(x_t)} \\mathbf{1}},
    \\qquad P(x_{t+1} = a \\mid x_{1:t}) = \\eta_t T^{(a)} \\mathbf{1}.

The best possible next-token predictor outputs exactly these probabilities, so its
cross-entropy at position :math:`L` is the conditional entropy
:math:`H(X_L \\mid X_{1:L-1}) = H(X_{1:L}) - H(X_{1:L-1})`, which decreases with :math:`L` to the
entropy rate :math:`h`. Shai et al. (2024) show that a transformer trained on next-token
prediction represents :math:`\\eta_t` linearly in its residual stream; for Mess3 the set of
beliefs is a fractal (a Sierpinski-like gasket) in the 2-simplex.

Mess3
-----
Three hidden states, three tokens (Marzen & Crutchfield 2017). The hidden chain stays put
with probability :math:`y = 1 - 2x` and jumps to each other state with probability :math:`x`;
on arriving in state :math:`j` it emits token :math:`j` with probability :math:`\\alpha` and each
other token with :math:`\\beta = (1-\\alpha)/2`, i.e. :math:`T^{(a)}_{ij} = P(i\\to j)\\,P(a\\mid j)`
(the form of the authors' code, ``epsilon-transformers``). The defaults are the paper's
:math:`x = 0.05, \\alpha = 0.85` (``MESS3_PAPER``), e.g. :math:`T^{(0)}_{00} = 0.765`,
:math:`T^{(0)}_{10} = 0.0425`, :math:`T^{(0)}_{11} = 0.0675`, :math:`T^{(0)}_{01} = 0.00375`;
its entropy rate is :math:`\\approx 0.7935` nats against :math:`\\ln 3 \\approx 1.0986` for
i.i.d. uniform tokens. ``MESS3_LIBRARY`` = :math:`x = 0.15, \\alpha = 0.6` is the default
of the authors' library (entropy rate :math:`\\approx 1.0889`, only :math:`\\approx 0.01` nats
below :math:`\\ln 3`), kept for comparison.

All entropies are in nats (divide by :math:`\\ln 2` for bits).

Sources: A. Shai, S. Marzen, L. Teixeira, A. Gietelink Oldenziel, P. Riechers,
"Transformers Represent Belief State Geometry in their Residual Stream", NeurIPS 2024
(arXiv:2405.15943); S. Marzen and J. Crutchfield, "Nearly maximally predictive features
and their dimensions", Phys. Rev. E 95, 051301 (2017).
"""

from __future__ import annotations

import itertools

import numpy as np


class HiddenMarkovModel:
    """An edge-emitting HMM given by ``transition_matrices[a, i, j]``."""

    def __init__(self, transition_matrices: np.ndarray) -> None:
        t = np.asarray(transition_matrices, dtype=np.float64)
        if t.ndim != 3 or t.shape[1] != t.shape[2]:
            raise ValueError(f"transition_matrices must be (n_tokens, S, S), got {t.shape}")
        if (t < 0).any() or not np.allclose(t.sum(axis=(0, 2)), 1.0):
            raise ValueError("transition matrices must be non-negative with rows of sum_a T^a = 1")
        self.transition_matrices = t
        self.n_tokens, self.n_states = t.shape[0], t.shape[1]
        self.stationary = self._stationary(t.sum(0))

    @staticmethod
    def _stationary(t: np.ndarray) -> np.ndarray:
        """Left eigenvector of ``t`` for eigenvalue 1, normalised to sum to 1."""
        vals, vecs = np.linalg.eig(t.T)
        v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
        return v / v.sum()

    def sample(
        self, n_seq: int, length: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``(tokens, hidden_states)``, both int64 ``(n_seq, length)``.

        The initial state is drawn from the stationary distribution. ``hidden_states[:, t]``
        is the state *after* emitting ``tokens[:, t]``, the variable whose posterior is
        ``belief_states(tokens)[:, t]``.
        """
        if n_seq < 1 or length < 1:
            raise ValueError(f"need n_seq >= 1 and length >= 1, got {n_seq}, {length}")
        # Joint outcome (token a, next state j) from state i: flat index a * S + j.
        table = self.transition_matrices.transpose(1, 0, 2).reshape(self.n_states, -1)
        cum = np.cumsum(table, axis=1)
        cum[:, -1] = 1.0  # guard against rounding
        state = rng.choice(self.n_states, size=n_seq, p=self.stationary)
        tokens = np.empty((n_seq, length), dtype=np.int64)
        states = np.empty((n_seq, length), dtype=np.int64)
        for t in range(length):
            u = rng.random(n_seq)
            outcome = (u[:, None] >= cum[state]).sum(axis=1)
            tokens[:, t], state = np.divmod(outcome, self.n_states)
            states[:, t] = state
        return tokens, states

    def _check_tokens(self, tokens) -> np.ndarray:
        tokens = np.asarray(tokens)
        if tokens.ndim == 1:
            tokens = tokens[None, :]
        if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be an integer array (n_seq, length), got {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.n_tokens):
            raise ValueError(f"tokens must lie in [0, {self.n_tokens})")
        return tokens

    def belief_states(self, tokens) -> np.ndarray:
        """Exact Bayesian beliefs :math:`\\eta_t`, shape ``(n_seq, length, n_states)``."""
        tokens = self._check_tokens(tokens)
        n_seq, length = tokens.shape
        eta = np.broadcast_to(self.stationary, (n_seq, self.n_states)).copy()
        out = np.empty((n_seq, length, self.n_states))
        for t in range(length):
            eta = np.einsum("ni,nij->nj", eta, self.transition_matrices[tokens[:, t]])
            eta /= eta.sum(axis=1, keepdims=True)
            out[:, t] = eta
        return out

    def next_token_probs(self, beliefs: np.ndarray) -> np.ndarray:
        """:math:`P(x_{t+1} = a \\mid \\eta_t) = \\eta_t T^{(a)} \\mathbf{1}`, shape ``(..., n_tokens)``."""
        return np.einsum("...i,aij->...a", beliefs, self.transition_matrices)

    def log_prob(self, tokens) -> np.ndarray:
        """:math:`\\ln P(x_{1:L})` of every sequence (scaled forward algorithm), ``(n_seq,)``."""
        tokens = self._check_tokens(tokens)
        eta = np.broadcast_to(self.stationary, (len(tokens), self.n_states)).copy()
        logp = np.zeros(len(tokens))
        for t in range(tokens.shape[1]):
            eta = np.einsum("ni,nij->nj", eta, self.transition_matrices[tokens[:, t]])
            norm = eta.sum(axis=1)
            logp += np.log(norm)
            eta /= norm[:, None]
        return logp

    def block_entropy(self, length: int) -> float:
        """:math:`H(X_{1:L}) = -\\sum_x P(x) \\ln P(x)` by enumerating all ``n_tokens**L`` blocks."""
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if length == 0:
            return 0.0
        if self.n_tokens**length > 2_000_000:
            raise ValueError("too many blocks to enumerate; use a shorter length")
        blocks = np.array(list(itertools.product(range(self.n_tokens), repeat=length)))
        p = np.exp(self.log_prob(blocks))
        return float(-(p * np.log(p, where=p > 0, out=np.zeros_like(p))).sum())

    def conditional_entropy(self, length: int) -> float:
        """:math:`H(X_L \\mid X_{1:L-1})`: the best achievable cross-entropy at position ``L``."""
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        return self.block_entropy(length) - self.block_entropy(length - 1)

    def entropy_rate_mc(self, rng: np.random.Generator, n_seq: int = 64, length: int = 2000):
        """Monte-Carlo entropy rate :math:`-\\frac1L \\ln P(x_{1:L})` (Shannon--McMillan--Breiman).

        Returns ``(mean, standard_error)`` over ``n_seq`` independent sequences.
        """
        tokens, _ = self.sample(n_seq, length, rng)
        rates = -self.log_prob(tokens) / length
        return float(rates.mean()), float(rates.std(ddof=1) / np.sqrt(n_seq))


#: Mess3 parameters of Shai et al. (2024): x = 0.05, alpha = 0.85 (the default).
MESS3_PAPER = {"x": 0.05, "alpha": 0.85}
#: The default of the ``epsilon-transformers`` library, x = 0.15, alpha = 0.6.
MESS3_LIBRARY = {"x": 0.15, "alpha": 0.6}


def mess3_matrices(x: float = 0.05, alpha: float = 0.85) -> np.ndarray:
    """Mess3's ``T[a, i, j] = P(i -> j) P(a | j)``, shape ``(3, 3, 3)``."""
    if not 0.0 <= x <= 0.5:
        raise ValueError(f"x must be in [0, 0.5], got {x}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    y, beta = 1.0 - 2.0 * x, (1.0 - alpha) / 2.0
    move = np.full((3, 3), x) + np.eye(3) * (y - x)  # P(i -> j)
    emit = np.full((3, 3), beta) + np.eye(3) * (alpha - beta)  # emit[a, j] = P(a | j)
    return move[None, :, :] * emit[:, None, :]


class Mess3(HiddenMarkovModel):
    """The Mess3 process; ``Mess3()`` has the paper's ``x=0.05, alpha=0.85``,
    ``Mess3(**MESS3_LIBRARY)`` the library default ``x=0.15, alpha=0.6``."""

    def __init__(self, x: float = 0.05, alpha: float = 0.85) -> None:
        self.x, self.alpha = float(x), float(alpha)
        super().__init__(mess3_matrices(x, alpha))
