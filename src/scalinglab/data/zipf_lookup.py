"""A Zipfian lookup source: many facts, seen with power-law frequencies, and an exact floor.

The source holds :math:`K` *facts*. Fact :math:`k` (:math:`k = 1..K`, by rank) is asked with
probability

.. math:: p_k = \\frac{k^{-\\alpha}}{\\sum_{j=1}^K j^{-\\alpha}}, \\qquad \\alpha > 1,

shown to the model as a fixed random code :math:`x_k \\in \\{-1, +1\\}^b` (distinct codes,
assigned in random order, so rank is not readable from the code), and answered with its
own token :math:`t_k \\in \\{0..V-1\\}` -- except that with probability :math:`\\varepsilon`
the answer is replaced by a uniformly random token. The answer's distribution is then
:math:`q(t_k) = 1 - \\varepsilon + \\varepsilon/V` and :math:`q(y) = \\varepsilon/V` otherwise,
the same for every fact, so the Bayes-optimal expected cross-entropy (the floor) is exactly

.. math:: E = H(q) = -(1-\\varepsilon+\\tfrac{\\varepsilon}{V})\\log(1-\\varepsilon+\\tfrac{\\varepsilon}{V})
          - (V-1)\\tfrac{\\varepsilon}{V}\\log\\tfrac{\\varepsilon}{V}.

Why this source (the quantization picture of Michaud et al. 2023, and the associative
memories of Cabannes et al. 2024): the codes are random, so nothing learned about one fact
helps with another; a model must *store* facts. A model that has stored the :math:`n` most
frequent facts and predicts the marginal on the others has reducible loss
:math:`\\propto \\sum_{k>n} p_k \\approx n^{-(\\alpha-1)}/(\\alpha-1)`. If storage grows in
proportion to the parameter count, :math:`n \\propto N`, the reducible loss falls as
:math:`N^{-(\\alpha-1)}`; if a fact needs a fixed number of sightings to be stored, the facts
stored from :math:`D` examples are those with :math:`D p_k \\gtrsim c`, :math:`n \\propto
D^{1/\\alpha}`, and the reducible loss falls as :math:`D^{-(\\alpha-1)/\\alpha}`. Both hold until
:math:`n` approaches :math:`K`, so :math:`K` is taken far beyond what any model in a sweep
stores.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ZipfLookup", "zipf_lookup_dataset"]


class ZipfLookup:
    """``n_facts`` facts with Zipf(``zipf_exponent``) frequencies, ``n_bits``-bit random codes,
    answers among ``n_classes`` tokens, replaced by uniform noise with probability ``noise``.
    Everything is drawn from ``numpy.random.default_rng(seed)``."""

    def __init__(
        self,
        n_facts: int = 2**16,
        n_bits: int = 24,
        n_classes: int = 16,
        zipf_exponent: float = 1.5,
        noise: float = 0.2,
        seed: int = 0,
    ) -> None:
        if n_facts < 1 or n_bits < 1 or n_classes < 2:
            raise ValueError("need n_facts >= 1, n_bits >= 1 and n_classes >= 2")
        if n_facts > 2**n_bits:
            raise ValueError(f"{n_facts} facts need distinct codes: n_bits >= log2(n_facts)")
        if not zipf_exponent > 1:
            raise ValueError(f"zipf_exponent must be > 1, got {zipf_exponent}")
        if not 0 <= noise <= 1:
            raise ValueError(f"noise must be in [0, 1], got {noise}")
        self.n_facts, self.n_bits, self.n_classes = int(n_facts), int(n_bits), int(n_classes)
        self.zipf_exponent, self.noise, self.seed = float(zipf_exponent), float(noise), int(seed)
        rng = np.random.default_rng(seed)
        weights = np.arange(1, n_facts + 1, dtype=np.float64) ** -self.zipf_exponent
        self.probs = weights / weights.sum()
        ints = rng.choice(2**n_bits, size=n_facts, replace=False)  # distinct codes
        bits = (ints[:, None] >> np.arange(n_bits)[None, :]) & 1
        self.codes = (2.0 * bits - 1.0).astype(np.float32)
        self.targets = rng.integers(0, n_classes, size=n_facts)

    @property
    def answer_probs(self) -> np.ndarray:
        """:math:`q`: the answer distribution of every fact, its own token first."""
        V, eps = self.n_classes, self.noise
        q = np.full(V, eps / V)
        q[0] = 1 - eps + eps / V
        return q

    @property
    def floor(self) -> float:
        """The exact Bayes loss :math:`H(q)` in nats (the same for every fact)."""
        q = self.answer_probs
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    def bayes_log_loss(self, items: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-example :math:`-\\log q(y \\mid k)` of the Bayes predictor (its mean over a sample
        is the *paired* floor of that sample)."""
        q = self.answer_probs
        hit = np.asarray(y) == self.targets[np.asarray(items)]
        return -np.log(np.where(hit, q[0], q[1]))

    def expected_loss(self, log_probs: np.ndarray) -> float:
        """Exact expected cross-entropy of a predictor given as log-probabilities
        ``(n_facts, n_classes)`` (row ``k``: the predictor's answer to fact ``k``)."""
        log_probs = np.asarray(log_probs, dtype=np.float64)
        V, eps = self.n_classes, self.noise
        own = log_probs[np.arange(self.n_facts), self.targets]
        per_fact = -(1 - eps) * own - (eps / V) * log_probs.sum(1)
        return float(self.probs @ per_fact)

    def reducible_if_stored(self, n: int) -> float:
        """Reducible loss of the predictor that knows the ``n`` most frequent facts exactly and
        answers the others with the uniform marginal: :math:`(\\log V - E)\\sum_{k>n} p_k`."""
        return float((np.log(self.n_classes) - self.floor) * self.probs[int(n) :].sum())

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` i.i.d. questions: fact indices (by rank, 0-based) and noisy answers.

        Example ``i`` uses only the ``i``-th row of three uniforms, so the first ``m`` of
        ``n`` samples are the ``m`` samples drawn with the same generator state."""
        u = rng.random((n, 3))
        cdf = np.cumsum(self.probs)
        items = np.minimum(np.searchsorted(cdf, u[:, 0] * cdf[-1], side="right"), self.n_facts - 1)
        y = self.targets[items].copy()
        flip = u[:, 1] < self.noise
        y[flip] = np.minimum((u[flip, 2] * self.n_classes).astype(np.int64), self.n_classes - 1)
        return items, y


def zipf_lookup_dataset(
    n_train: int,
    n_test: int,
    n_facts: int = 2**16,
    n_bits: int = 24,
    n_classes: int = 16,
    zipf_exponent: float = 1.5,
    noise: float = 0.2,
    source_seed: int = 0,
    seed: int = 0,
) -> dict:
    """Train and test sets of a :class:`ZipfLookup` source, drawn independently.

    Returns ``x_train (n_train, n_bits)`` float32 codes, ``y_train`` int64 answers, the same
    for the test split, ``items_train`` / ``items_test`` (fact ranks), ``floor`` (the exact
    :math:`H(q)`) and ``paired_floor`` (the Bayes predictor's mean loss on *this* test set).
    The training sets of a sweep are prefixes of ``x_train``: a smaller data set is the start
    of a larger one, and every example is seen once (one epoch) in a sweep's runs.
    """
    source = ZipfLookup(n_facts, n_bits, n_classes, zipf_exponent, noise, source_seed)
    # separate streams: the test set does not depend on n_train, the training sets are nested
    it_tr, y_tr = source.sample(n_train, np.random.default_rng([seed, 0]))
    it_te, y_te = source.sample(n_test, np.random.default_rng([seed, 1]))
    return {
        "x_train": source.codes[it_tr],
        "y_train": y_tr.astype(np.int64),
        "x_test": source.codes[it_te],
        "y_test": y_te.astype(np.int64),
        "items_train": it_tr,
        "items_test": it_te,
        "floor": source.floor,
        "paired_floor": float(source.bayes_log_loss(it_te, y_te).mean()),
    }
