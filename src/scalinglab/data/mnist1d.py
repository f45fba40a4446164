"""MNIST-1D (Greydanus & Kobak 2020), generated locally -- never downloaded.

Each example is a 40-sample 1-D signal: one of ten hand-drawn digit templates, padded,
translated, scaled, sheared and blurred with correlated noise. It is small enough to train
hundreds of MLPs on a laptop CPU yet, unlike MNIST, linear models and small MLPs differ
clearly, which is why it is the test bed for double descent and scaling sweeps.

We call :func:`mnist1d.data.make_dataset` with the library's default arguments
(:func:`mnist1d.data.get_dataset_args`) except the number of samples and the seed, then
split the (already shuffled) samples into the first ``n_train`` and the next ``n_test``.
``make_dataset`` seeds NumPy's *global* generator; we save and restore its state so that
calling this function does not change anybody else's random numbers.

``make_mnist1d(4000, 1000, seed=42)`` is exactly the generator's default data set (the one
the MNIST-1D paper and its double-descent experiments use: seed 42, 4000 train, 1000 test).
Generation takes a few seconds, so results are cached per ``(size, seed)`` in the process.

Label noise (``label_noise > 0``) flips that fraction of the *training* labels with
:func:`scalinglab.data.noise.flip_labels` (test labels stay clean, as in Nakkiran et al. 2020).

Source: S. Greydanus and D. Kobak, "Scaling Down Deep Learning with MNIST-1D", ICML 2024
(arXiv:2011.14439); https://github.com/greydanus/mnist1d. P. Nakkiran, G. Kaplun, Y. Bansal,
T. Yang, B. Barak, I. Sutskever, "Deep Double Descent: Where Bigger Models and More Data
Hurt", ICLR 2020 (arXiv:1912.02292).
"""

from __future__ import annotations

import functools

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

from scalinglab.data.noise import flip_labels

N_CLASSES = 10
LENGTH = 40


def make_mnist1d(
    n_train: int = 4000, n_test: int = 1000, label_noise: float = 0.0, seed: int = 0
) -> dict[str, np.ndarray]:
    """Return ``dict(x_train, y_train, x_test, y_test)``: float32 ``(n, 40)``, int64 labels.

    ``seed=42`` with ``n_train=4000, n_test=1000`` reproduces the reference data set.
    """
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train}, {n_test}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    total = n_train + n_test
    # make_dataset draws num_samples // 10 per class: round up, then cut to size.
    x, y = _generate(N_CLASSES * -(-total // N_CLASSES), int(seed))
    data = {  # copies: callers may modify them without touching the cache
        "x_train": x[:n_train].copy(),
        "y_train": y[:n_train].copy(),
        "x_test": x[n_train:total].copy(),
        "y_test": y[n_train:total].copy(),
    }
    if label_noise > 0:
        rng = np.random.default_rng([seed, 1])  # independent of the generator's stream
        data["y_train"], _ = flip_labels(data["y_train"], label_noise, N_CLASSES, rng)
    return data


@functools.lru_cache(maxsize=8)
def _generate(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All samples of one generator run (cached: generation takes seconds; arrays read-only)."""
    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = 1.0  # we split ourselves, to get exactly n_train / n_test
    args.seed = seed
    state = np.random.get_state()  # noqa: NPY002 -- mnist1d seeds the legacy global RNG
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    x = np.asarray(raw["x"], dtype=np.float32)
    y = np.asarray(raw["y"], dtype=np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y
