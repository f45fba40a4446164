"""Modular arithmetic tables, the data set of grokking (Power et al. 2022).

For a prime :math:`p` and an operation :math:`\\circ`, the full table has the :math:`p^2`
equations :math:`a \\circ b \\equiv c \\pmod p` (for division :math:`b \\neq 0`, so :math:`p(p-1)`,
with :math:`a / b = a\\, b^{p-2} \\bmod p` by Fermat's little theorem). A random
``train_fraction`` of the table is the training set and the rest the test set. A small
network with weight decay first memorises the training equations and only much later
*generalises* to the held-out ones -- grokking.

Encodings
---------
- ``"tokens"`` (for a transformer): ``x = [a, b, p]`` where token ``p`` stands for "=" (the
  vocabulary is ``p + 1`` tokens) and the label is ``c``; read the logits at the last
  position.
- ``"onehot"`` (for an MLP): ``x`` is the concatenation of the one-hot codes of ``a`` and
  ``b``, float32 of width ``2p``.

Sources: A. Power, Y. Burda, H. Edwards, I. Babuschkin, V. Misra, "Grokking:
Generalization Beyond Overfitting on Small Algorithmic Datasets", arXiv:2201.02177 (2022);
N. Nanda et al., "Progress measures for grokking via mechanistic interpretability",
ICLR 2023 (arXiv:2301.05217).
"""

from __future__ import annotations

import numpy as np

OPS = ("+", "-", "*", "/")


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % k for k in range(2, int(p**0.5) + 1))


def modular_table(p: int, op: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All equations ``(a, b, c)`` with ``c = a op b mod p`` as three int64 arrays."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; choose one of {OPS}")
    if not _is_prime(p):
        raise ValueError(f"p must be a prime (so that the table is a field), got {p}")
    a, b = (g.ravel() for g in np.meshgrid(np.arange(p), np.arange(p), indexing="ij"))
    if op == "/":
        a, b = a[b != 0], b[b != 0]
    if op == "+":
        c = (a + b) % p
    elif op == "-":
        c = (a - b) % p
    elif op == "*":
        c = (a * b) % p
    else:
        inverse = np.array([pow(int(v), p - 2, p) for v in range(p)])  # Fermat
        c = (a * inverse[b]) % p
    return a.astype(np.int64), b.astype(np.int64), c.astype(np.int64)


def modular_arithmetic_dataset(
    p: int = 97,
    op: str = "+",
    train_fraction: float = 0.3,
    seed: int = 0,
    encoding: str = "tokens",
) -> dict[str, np.ndarray]:
    """Return ``dict(x_train, y_train, x_test, y_test)`` for ``a op b mod p``.

    ``x`` is int64 ``(n, 3)`` tokens ``[a, b, p]`` or float32 ``(n, 2p)`` one-hots
    (``encoding="onehot"``); ``y`` is int64 ``c`` in ``[0, p)``.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    if encoding not in ("tokens", "onehot"):
        raise ValueError(f"encoding must be 'tokens' or 'onehot', got {encoding!r}")
    a, b, c = modular_table(p, op)
    perm = np.random.default_rng(seed).permutation(len(c))
    n_train = int(round(train_fraction * len(c)))
    if encoding == "tokens":
        x = np.stack([a, b, np.full_like(a, p)], axis=1)
    else:
        x = np.zeros((len(c), 2 * p), dtype=np.float32)
        x[np.arange(len(c)), a] = 1.0
        x[np.arange(len(c)), p + b] = 1.0
    train, test = perm[:n_train], perm[n_train:]
    return {"x_train": x[train], "y_train": c[train], "x_test": x[test], "y_test": c[test]}
