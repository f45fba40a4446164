"""Next-token prediction on a Markov source, with the test loss computed exactly.

The model is the simplest one that can be *perfect*: a table of logits, one row per
context of ``context_length`` tokens, :math:`q(x \\mid c) = \\operatorname{softmax}(W_c)_x`.
Because the source is known, its expected cross-entropy on fresh data needs no test set:

.. math:: \\mathbb{E}[-\\log q(X \\mid C)] = -\\sum_{c,x} P(c, x) \\log q(x \\mid c)
          = H(X \\mid C) + \\sum_c P(c)\\, \\mathrm{KL}(P(\\cdot\\mid c) \\,\\|\\, q(\\cdot\\mid c)),

so it can never fall below the floor :math:`H(X \\mid C)` (Gibbs' inequality), and the gap
is exactly the model's average KL divergence from the truth.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm  # a text bar, never a Jupyter widget (the book is read offline)

from scalinglab.data.markov import MarkovSource
from scalinglab.engine.seeding import seed_everything

__all__ = [
    "count_table_model",
    "exact_cross_entropy",
    "exact_expected_l1",
    "train_table_model",
    "training_pairs",
]


def exact_cross_entropy(source: MarkovSource, context_length: int, log_q: np.ndarray) -> float:
    """Expected cross-entropy (nats/token) of the table model with log-probabilities
    ``log_q`` of shape ``(vocab**context_length, vocab)`` on data from ``source``."""
    joint = source.joint(context_length)
    log_q = np.asarray(log_q, dtype=np.float64)
    if log_q.shape != joint.shape:
        raise ValueError(f"log_q must have shape {joint.shape}, got {log_q.shape}")
    return float(-np.sum(joint * log_q))


def exact_expected_l1(source: MarkovSource, context_length: int, log_q: np.ndarray) -> float:
    """Expected L1 loss :math:`\\mathbb{E}[1 - q(X \\mid C)] = 1 - \\sum_{c,x} P(c, x)\\, q(x \\mid c)`
    of the table model on data from ``source``. It is *linear* in :math:`q`, so for each
    context it is minimised by putting all mass on the most likely token, not by
    :math:`q = P`: the L1 loss is not a proper scoring rule."""
    joint = source.joint(context_length)
    q = np.exp(np.asarray(log_q, dtype=np.float64))
    if q.shape != joint.shape:
        raise ValueError(f"log_q must have shape {joint.shape}, got {q.shape}")
    return float(1.0 - np.sum(joint * q))


def _context_index(contexts: np.ndarray, vocab_size: int) -> np.ndarray:
    idx = np.zeros(len(contexts), dtype=np.int64)
    for j in range(contexts.shape[1]):
        idx = idx * vocab_size + contexts[:, j]
    return idx


def training_pairs(
    source: MarkovSource, context_length: int, n_train_tokens: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The training sample of :func:`train_table_model` and :func:`count_table_model`:
    ``(context index, next token)`` pairs from ``n_train_tokens`` sampled tokens
    (sequences of about 200 tokens, generator seeded with ``seed``)."""
    if context_length < 0 or n_train_tokens < 1:
        raise ValueError("context_length >= 0 and n_train_tokens >= 1 required")
    rng = seed_everything(seed)
    n_seq = max(1, n_train_tokens // 200)
    tokens = source.sample(n_seq, n_train_tokens // n_seq + context_length, rng)
    contexts, targets = source.windows(tokens, context_length)
    return _context_index(contexts, source.vocab_size), targets


def count_table_model(
    source: MarkovSource,
    context_length: int,
    n_train_tokens: int = 20_000,
    pseudocount: float = 0.5,
    seed: int = 0,
) -> dict:
    """The count-based estimator on the same sample as :func:`train_table_model`:
    :math:`q(x \\mid c) = (n_{c,x} + a) / (n_c + V a)` with pseudocount :math:`a`
    (:math:`a = 1/2` is the Krichevsky--Trofimov estimator).

    For :math:`n` training tokens its expected excess cross-entropy over the floor is,
    to leading order, :math:`k / (2n)` with :math:`k = V^{c}(V - 1)` free parameters
    (the classical asymptotics of the KL risk of a smoothed maximum-likelihood estimate).
    Returns ``log_q``, the exact ``test_cross_entropy``, ``floor``, ``n_free_params``
    (:math:`k`) and ``theory_gap`` (:math:`k / (2n)`, with :math:`n` the number of
    training pairs).
    """
    if pseudocount <= 0:
        raise ValueError(f"pseudocount must be > 0, got {pseudocount}")
    ctx, y = training_pairs(source, context_length, n_train_tokens, seed)
    v = source.vocab_size
    counts = np.zeros((v**context_length, v))
    np.add.at(counts, (ctx, y), 1.0)
    q = (counts + pseudocount) / (counts.sum(1, keepdims=True) + v * pseudocount)
    log_q = np.log(q)
    k = v**context_length * (v - 1)
    return {
        "log_q": log_q,
        "test_cross_entropy": exact_cross_entropy(source, context_length, log_q),
        "floor": source.conditional_entropy(context_length),
        "n_free_params": k,
        "n_train_pairs": len(y),
        "theory_gap": k / (2 * len(y)),
    }


def train_table_model(
    source: MarkovSource,
    context_length: int,
    n_train_tokens: int = 20_000,
    steps: int = 1_000,
    loss: str = "cross_entropy",
    lr: float = 0.1,
    batch_size: int = 512,
    init_scale: float = 0.0,
    log_every: int = 25,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Train a logit table on ``n_train_tokens`` sampled tokens with Adam.

    ``loss`` is ``"cross_entropy"`` (:math:`-\\log q_y`) or ``"l1"`` (:math:`1 - q_y`).
    ``init_scale`` sets the standard deviation of the initial logits: large values make
    the model start out confidently wrong on most contexts.

    Returns a dict with ``step``, ``train_loss`` (the optimised loss on the batch) and
    ``test_cross_entropy`` (exact, see module docstring) at every ``log_every`` steps,
    plus ``floor`` (:math:`H(X\\mid C)`) and the final ``log_q`` table.
    """
    if loss not in ("cross_entropy", "l1"):
        raise ValueError(f"loss must be 'cross_entropy' or 'l1', got {loss!r}")
    if context_length < 0 or n_train_tokens < 1 or steps < 1:
        raise ValueError("context_length >= 0, n_train_tokens >= 1 and steps >= 1 required")
    v = source.vocab_size
    contexts, targets = training_pairs(source, context_length, n_train_tokens, seed)
    ctx = torch.as_tensor(contexts)
    y = torch.as_tensor(targets)

    logits = torch.nn.Parameter(init_scale * torch.randn(v**context_length, v, dtype=torch.float64))
    opt = torch.optim.Adam([logits], lr=lr)
    history = {"step": [], "train_loss": [], "test_cross_entropy": []}
    gen = torch.Generator().manual_seed(seed)
    for step in tqdm(range(steps + 1), disable=not progress, desc=f"context {context_length}"):
        batch = torch.randint(len(y), (min(batch_size, len(y)),), generator=gen)
        log_q = torch.log_softmax(logits[ctx[batch]], dim=-1)
        log_q_y = log_q.gather(1, y[batch, None])[:, 0]
        value = -log_q_y.mean() if loss == "cross_entropy" else (1 - log_q_y.exp()).mean()
        if step % log_every == 0:
            with torch.no_grad():
                table = torch.log_softmax(logits, dim=-1).numpy()
            history["step"].append(step)
            history["train_loss"].append(float(value.detach()))
            history["test_cross_entropy"].append(exact_cross_entropy(source, context_length, table))
        if step == steps:
            break
        opt.zero_grad()
        value.backward()
        opt.step()
    history["floor"] = source.conditional_entropy(context_length)
    history["log_q"] = torch.log_softmax(logits, dim=-1).detach().numpy()
    return history
