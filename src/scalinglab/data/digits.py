"""The scikit-learn handwritten digits (8x8 images, 1797 examples, 10 classes), offline.

The data ship with scikit-learn (UCI ML hand-written digits, Alpaydin & Kaynak 1998), so
nothing is downloaded. Pixels, originally integers 0..16, are scaled to :math:`[0, 1]` and
flattened to 64 features. The split is stratified so both halves keep the class balance.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def load_digits_split(test_size: float = 0.25, seed: int = 0) -> dict[str, np.ndarray]:
    """Return ``dict(x_train, y_train, x_test, y_test)``: float32 ``(n, 64)`` and int64 labels."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
