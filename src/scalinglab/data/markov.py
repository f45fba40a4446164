"""A synthetic "language" whose entropy rate is known exactly: an order-k Markov chain.

Tokens come from a vocabulary of size :math:`V`; the next token depends only on the
previous :math:`k` tokens (the *context* :math:`s \\in \\{0..V-1\\}^k`) through a table of
conditional distributions :math:`P(x \\mid s)`. Viewed as a chain on contexts it has a
stationary distribution :math:`\\pi(s)`, and the **entropy rate**

.. math:: h = \\lim_{T\\to\\infty} \\tfrac1T H(X_1..X_T) = \\sum_s \\pi(s)\\, H(P(\\cdot\\mid s))

is the smallest *expected* cross-entropy per token that any predictor can reach on data
from the source (Gibbs' inequality; Cover & Thomas, *Elements of Information Theory*,
Thm. 4.2.4 for the rate). A finite sample can score below it by chance. A model
that sees fewer than :math:`k` tokens of context faces a higher floor: the conditional
entropy given the shorter context, computed by :meth:`MarkovSource.conditional_entropy`.
"""

from __future__ import annotations

import numpy as np

from scalinglab.losses import entropy

__all__ = ["MarkovSource", "markov_windows_dataset", "source_log_loss_on_windows"]


class MarkovSource:
    """Order-``order`` Markov chain over ``vocab_size`` tokens.

    Parameters
    ----------
    transition:
        Array of shape ``(vocab_size**order, vocab_size)``; row ``s`` is
        :math:`P(\\cdot \\mid s)` for the context whose base-``vocab_size`` digits are the
        last ``order`` tokens, the most recent token being the least significant digit.
    """

    def __init__(self, transition, order: int = 1):
        transition = np.asarray(transition, dtype=np.float64)
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if transition.ndim != 2:
            raise ValueError("transition must be a 2-D array (contexts x vocabulary)")
        vocab_size = transition.shape[1]
        if transition.shape[0] != vocab_size**order:
            raise ValueError(
                f"an order-{order} chain over {vocab_size} tokens needs {vocab_size**order} "
                f"rows, got {transition.shape[0]}"
            )
        if np.any(transition < 0) or not np.allclose(transition.sum(1), 1.0):
            raise ValueError("every row of transition must be a probability distribution")
        self.transition = transition
        self.order = order
        self.vocab_size = vocab_size
        self._stationary: np.ndarray | None = None

    @classmethod
    def random(
        cls, vocab_size: int, order: int = 1, concentration: float = 0.5, seed: int = 0
    ) -> MarkovSource:
        """Rows drawn from a symmetric Dirichlet(``concentration``): small values give
        peaked, predictable rows (low entropy), large values near-uniform ones."""
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        if concentration <= 0:
            raise ValueError(f"concentration must be > 0, got {concentration}")
        rng = np.random.default_rng(seed)
        rows = rng.dirichlet(np.full(vocab_size, concentration), size=vocab_size**order)
        # Mix in a little uniform mass so the chain is irreducible and aperiodic:
        # then the stationary distribution is unique and the entropy rate well defined.
        rows = 0.98 * rows + 0.02 / vocab_size
        return cls(rows, order=order)

    # ----------------------------------------------------------------- exact quantities
    def _context_chain(self) -> np.ndarray:
        """Transition matrix between contexts: s -> s' = (s * V + x) mod V^k."""
        n_ctx, v = self.transition.shape
        chain = np.zeros((n_ctx, n_ctx))
        nxt = (np.arange(n_ctx)[:, None] * v + np.arange(v)[None, :]) % n_ctx
        np.add.at(chain, (np.repeat(np.arange(n_ctx), v), nxt.ravel()), self.transition.ravel())
        return chain

    def stationary(self) -> np.ndarray:
        """Stationary distribution over contexts, :math:`\\pi = \\pi Q`, from the left
        eigenvector of the context chain :math:`Q` for eigenvalue 1."""
        if self._stationary is None:
            q = self._context_chain()
            vals, vecs = np.linalg.eig(q.T)
            pi = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
            self._stationary = pi / pi.sum()
        return self._stationary

    def entropy_rate(self, base: float | None = None) -> float:
        """:math:`h = \\sum_s \\pi(s) H(P(\\cdot\\mid s))` in nats (bits with ``base=2``)."""
        return float(self.stationary() @ entropy(self.transition, base=base))

    def joint(self, context_length: int) -> np.ndarray:
        """Stationary joint distribution :math:`P(c, x)` of the last ``context_length``
        tokens (as a context index, most recent token least significant) and the next
        token, shape ``(vocab_size**context_length, vocab_size)``. Sums to 1."""
        if context_length < 0:
            raise ValueError("context_length must be >= 0")
        v, k = self.vocab_size, self.order
        joint = self.stationary()[:, None] * self.transition
        if context_length <= k:
            # the last c tokens of a context s are s mod V^c: marginalise the older ones
            out = np.zeros((v**context_length, v))
            np.add.at(out, np.arange(v**k) % v**context_length, joint)
            return out
        # longer contexts than the order: the extra (older) tokens follow the stationary
        # process backwards; build them by extending the chain forward from pi.
        ctx_probs = self._context_marginal(context_length)
        last_k = np.arange(v**context_length) % v**k
        return ctx_probs[:, None] * self.transition[last_k]

    def _context_marginal(self, length: int) -> np.ndarray:
        """Stationary probability of every block of ``length >= order`` tokens."""
        v, k = self.vocab_size, self.order
        probs = self.stationary().copy()  # blocks of length k
        for n in range(k, length):
            # append one token: block b of length n -> b * V + x
            probs = (probs[:, None] * self.transition[np.arange(v**n) % v**k]).ravel()
        return probs

    def conditional_entropy(self, context_length: int, base: float | None = None) -> float:
        """:math:`H(X_t \\mid X_{t-c}..X_{t-1})` under the stationary distribution: the
        floor of a model that sees only the last ``context_length`` tokens.

        ``context_length = 0`` gives the unigram entropy; any value ``>= order`` gives the
        entropy rate. It decreases with the context length (conditioning reduces entropy).
        """
        if context_length >= self.order:
            return self.entropy_rate(base=base)
        joint = self.joint(context_length)
        marginal = joint.sum(1)
        keep = marginal > 0
        cond = joint[keep] / marginal[keep, None]
        return float(marginal[keep] @ entropy(cond, base=base))

    def unigram(self) -> np.ndarray:
        """Stationary token frequencies :math:`P(X_t = x)`."""
        return self.joint(0)[0]

    # ----------------------------------------------------------------------- sampling
    def sample(self, n_seq: int, length: int, rng: np.random.Generator | int = 0) -> np.ndarray:
        """``n_seq`` independent sequences of ``length`` tokens, shape ``(n_seq, length)``,
        each started from the stationary distribution over contexts (so every position is
        distributed like the stationary process)."""
        if n_seq < 1 or length < 1:
            raise ValueError("n_seq and length must be >= 1")
        rng = np.random.default_rng(rng)
        v, k = self.vocab_size, self.order
        ctx = _draw(rng, np.broadcast_to(self.stationary(), (n_seq, v**k)))
        out = np.empty((n_seq, length), dtype=np.int64)
        cdf = np.cumsum(self.transition, axis=1)
        for t in range(length):
            u = rng.random(n_seq)[:, None]
            tok = np.minimum((u > cdf[ctx]).sum(1), v - 1)
            out[:, t] = tok
            ctx = (ctx * v + tok) % v**k
        return out

    def context_index(self, tokens: np.ndarray) -> np.ndarray:
        """Context index of the last ``order`` tokens along the last axis."""
        tokens = np.asarray(tokens)
        idx = np.zeros(tokens.shape[:-1], dtype=np.int64)
        for j in range(self.order):
            idx = idx * self.vocab_size + tokens[..., -self.order + j]
        return idx

    def windows(self, tokens: np.ndarray, context_length: int) -> tuple[np.ndarray, np.ndarray]:
        """Supervised pairs for next-token prediction: every window of
        ``context_length`` tokens and the token that follows it.
        Returns ``(contexts (n, context_length), targets (n,))``."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] <= context_length:
            raise ValueError("tokens must be (n_seq, length) with length > context_length")
        view = np.lib.stride_tricks.sliding_window_view(tokens, context_length + 1, axis=1)
        view = view.reshape(-1, context_length + 1)
        return view[:, :-1].copy(), view[:, -1].copy()

    def true_log_loss(self, tokens: np.ndarray) -> float:
        """Average negative log-likelihood (nats/token) of ``tokens`` under the source
        itself, for positions that have a full context. Tends to :meth:`entropy_rate`."""
        ctx, nxt = self.windows(tokens, self.order)
        return float(-np.mean(np.log(self.transition[self.context_index(ctx), nxt])))


def markov_windows_dataset(
    source: MarkovSource, context_length: int, n_train: int, n_test: int, seed: int = 0
) -> dict:
    """Next-token prediction from a Markov source as a classification data set.

    Inputs are the one-hot codes of ``context_length`` consecutive tokens, flattened
    (``context_length * vocab_size`` float32 features); the label is the next token.
    Windows are cut from sequences of ``64 + context_length`` tokens sampled with
    ``numpy.random.default_rng(seed)`` (train first, then test). Returns the dict
    ``x_train, y_train, x_test, y_test`` the training engine takes; it is the data set of
    chapter 4's sweep (``scalinglab/records/ch04_markov_sweep.config.json``).
    """
    rng = np.random.default_rng(seed)
    v = source.vocab_size

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = source.sample(n // 64 + 1, 64 + context_length, rng)
        ctx, nxt = source.windows(tokens, context_length)
        return np.eye(v, dtype=np.float32)[ctx[:n]].reshape(n, -1), nxt[:n]

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def source_log_loss_on_windows(source: MarkovSource, x, y) -> float:
    """The source's *own* average log-loss (nats/token) on a windows data set from
    :func:`markov_windows_dataset` (one-hot inputs ``x``, labels ``y``; the window must hold
    at least ``source.order`` tokens). Its expectation is the entropy rate, but on a finite
    test set it fluctuates around it: this is the floor to compare sampled test losses
    with, on the same windows."""
    v = source.vocab_size
    x = np.asarray(x)
    y = np.asarray(y)
    tokens = x.reshape(len(x), -1, v).argmax(-1)
    if tokens.shape[1] < source.order:
        raise ValueError(f"windows of {tokens.shape[1]} tokens are shorter than the order")
    return float(-np.mean(np.log(source.transition[source.context_index(tokens), y])))


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs``."""
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((u > np.cumsum(probs, axis=1)).sum(1), probs.shape[1] - 1)
