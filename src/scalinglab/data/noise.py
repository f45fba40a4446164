"""Label noise: replace a fraction of the labels with a *different* random class.

Double descent (chapter 6) is sharpest with it, though it does not need it (Nakkiran et al.
2020's translation transformers had none; any residual error the model class cannot fit
will do): with a fraction :math:`\\varepsilon` of wrong labels, a model that interpolates the
training set must memorise :math:`\\varepsilon n` arbitrary points, and the test error peaks
where it is just barely able to (greydanus/mnist1d's double-descent notebook uses 15%).

Exactly :math:`\\operatorname{round}(\\varepsilon n)` labels are flipped, chosen without
replacement. Each flipped label :math:`y` becomes :math:`(y + k) \\bmod C` with :math:`k` uniform
on :math:`\\{1, \\dots, C-1\\}`: uniform over the :math:`C-1` *other* classes, never itself.
"""

from __future__ import annotations

import numpy as np


def flip_labels(
    y: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y_noisy, flipped_mask)``; ``y`` itself is not modified.

    ``fraction`` in ``[0, 1]``; ``n_classes >= 2``; labels must lie in ``[0, n_classes)``.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if n_classes < 2:
        raise ValueError(f"need n_classes >= 2 to flip a label, got {n_classes}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    n_flip = int(round(fraction * y.size))
    idx = rng.choice(y.size, size=n_flip, replace=False)
    y_noisy = y.copy()
    y_noisy[idx] = (y[idx] + rng.integers(1, n_classes, size=n_flip)) % n_classes
    mask = np.zeros(y.size, dtype=bool)
    mask[idx] = True
    return y_noisy, mask
