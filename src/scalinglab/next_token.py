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
from scalinglab.seeding import seed_everything

__all__ = ["exact_cross_entropy", "train_table_model"]


def exact_cross_entropy(source: MarkovSource, context_length: int, log_q: np.ndarray) -> float:
    """Expected cross-entropy (nats/token) of the table model with log-probabilities
    ``log_q`` of shape ``(vocab**context_length, vocab)`` on data from ``source``."""
    joint = source.joint(context_length)
    log_q = np.asarray(log_q, dtype=np.float64)
    if log_q.shape != joint.shape:
        raise ValueError(f"log_q must have shape {joint.shape}, got {log_q.shape}")
    return float(-np.sum(joint * log_q))


def _context_index(contexts: np.ndarray, vocab_size: int) -> np.ndarray:
    idx = np.zeros(len(contexts), dtype=np.int64)
    for j in range(contexts.shape[1]):
        idx = idx * vocab_size + contexts[:, j]
    return idx


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
    rng = seed_everything(seed)
    v = source.vocab_size
    n_seq = max(1, n_train_tokens // 200)
    tokens = source.sample(n_seq, n_train_tokens // n_seq + context_length, rng)
    contexts, targets = source.windows(tokens, context_length)
    ctx = torch.as_tensor(_context_index(contexts, v))
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
