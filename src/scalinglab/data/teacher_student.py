"""Teacher--student regression with inputs on a manifold of known intrinsic dimension.

The resolution-limited theory of scaling (Sharma & Kaplan 2020; Bahri et al. 2021) says:
if :math:`n` training inputs cover a :math:`d`-dimensional manifold, their typical spacing is
:math:`s \\propto n^{-1/d}`; a model that interpolates a *smooth* target between them errs by
:math:`O(s^2)`, so the squared loss falls as :math:`s^4 \\propto n^{-4/d}`. To test it we need
data whose :math:`d` is known and whose target is smooth -- this module makes them:

1. inputs :math:`x` on a manifold from :mod:`scalinglab.data.manifolds` (``"sphere"``:
   :math:`S^d \\subset \\mathbb{R}^{d+1}`, ``"torus"``: :math:`T^d \\subset \\mathbb{R}^{2d}`,
   ``"subspace"``: a Gaussian in a random :math:`d`-plane), optionally rotated into a larger
   ``ambient_dim`` by a random isometry (:func:`~scalinglab.data.manifolds.embed_isometric`);
2. targets :math:`y = (T(x) - \\mu)/\\sigma` from a random *teacher* MLP :math:`T` with tanh
   activations (smooth: infinitely differentiable) and Xavier-normal weights,
   standardised with the mean and std of :math:`T` on a fixed reference sample;
3. optional Gaussian label noise of standard deviation ``noise_std`` on the training targets.

Independent random streams (``numpy.random.default_rng([seed, k])``) drive the teacher,
the training inputs, the test inputs, the embedding and the reference sample, so the test
set and the teacher do not change with ``n_train`` and a smaller training set is a prefix
of a larger one -- sample-size sweeps compare like with like.

Sources: U. Sharma and J. Kaplan, "A Neural Scaling Law from the Dimension of the Data
Manifold", arXiv:2004.10802 (2020), JMLR 23 (2022); Y. Bahri, E. Dyer, J. Kaplan, J. Lee,
U. Sharma, "Explaining Neural Scaling Laws", arXiv:2102.06701 (2021).
"""

from __future__ import annotations

import numpy as np

from scalinglab.data.manifolds import (
    embed_isometric,
    sample_hypersphere,
    sample_linear_subspace,
    sample_torus,
)

MANIFOLDS = ("sphere", "torus", "subspace")


def native_dim(manifold: str, intrinsic_dim: int) -> int:
    """Ambient dimension in which a sampler returns its points (before any embedding)."""
    if manifold == "sphere":
        return intrinsic_dim + 1
    if manifold == "torus":
        return 2 * intrinsic_dim
    if manifold == "subspace":
        return intrinsic_dim
    raise ValueError(f"unknown manifold {manifold!r}; choose one of {MANIFOLDS}")


class Teacher:
    """A random tanh MLP :math:`\\mathbb{R}^D \\to \\mathbb{R}^k` with Xavier-normal weights."""

    def __init__(
        self, in_dim: int, width: int, depth: int, out_dim: int, rng: np.random.Generator
    ) -> None:
        dims = [in_dim] + [width] * depth + [out_dim]
        self.weights = [
            rng.normal(0.0, np.sqrt(2.0 / (a + b)), size=(a, b))
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        ]
        # Random biases shift every unit off the origin so the function is not odd.
        self.biases = [rng.normal(0.0, 0.5, size=b) for b in dims[1:]]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float64)
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if k < len(self.weights) - 1:
                h = np.tanh(h)
        return h


def _inputs(manifold, n, d, ambient_dim, rng, embed_rng_seed):
    if manifold == "sphere":
        x = sample_hypersphere(n, d, rng)
    elif manifold == "torus":
        x = sample_torus(n, d, rng)
    else:
        x = sample_linear_subspace(n, d, d, rng)
    if ambient_dim is not None and ambient_dim > x.shape[1]:
        # The same seed gives the same isometry for train, test and reference points.
        x = embed_isometric(x, ambient_dim, np.random.default_rng(embed_rng_seed))
    return x


def standardised_teacher(
    intrinsic_dim: int = 2,
    manifold: str = "torus",
    ambient_dim: int | None = None,
    teacher_width: int = 64,
    teacher_depth: int = 2,
    out_dim: int = 1,
    seed: int = 0,
):
    """The noiseless target of :func:`teacher_student_dataset` with the same arguments, as a
    function of the (embedded) inputs: ``x -> (T(x) - mu) / sigma``, float64 ``(n, out_dim)``.

    Useful wherever a page needs the target itself, not only samples of it (its gradient,
    say); the data set's labels are this function at the sampled inputs."""
    native = native_dim(manifold, intrinsic_dim)
    dim = native if ambient_dim is None else ambient_dim
    teacher = Teacher(dim, teacher_width, teacher_depth, out_dim, np.random.default_rng([seed, 0]))
    ref_x = _inputs(
        manifold, 4096, intrinsic_dim, ambient_dim, np.random.default_rng([seed, 4]), [seed, 3]
    )
    ref = teacher(ref_x)
    mu, sigma = ref.mean(0), ref.std(0)

    def target(x: np.ndarray) -> np.ndarray:
        return (teacher(x) - mu) / sigma

    return target


def teacher_student_dataset(
    n_train: int = 1000,
    n_test: int = 1000,
    intrinsic_dim: int = 2,
    manifold: str = "torus",
    ambient_dim: int | None = None,
    teacher_width: int = 64,
    teacher_depth: int = 2,
    out_dim: int = 1,
    noise_std: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Return ``dict(x_train, y_train, x_test, y_test)``: float32 ``(n, D)`` and ``(n, out_dim)``.

    ``D = ambient_dim`` if given (must be >= the sampler's native dimension), else the
    native dimension (``d + 1`` sphere, ``2d`` torus, ``d`` subspace).
    """
    if manifold not in MANIFOLDS:
        raise ValueError(f"unknown manifold {manifold!r}; choose one of {MANIFOLDS}")
    for name, v in (("n_train", n_train), ("intrinsic_dim", intrinsic_dim), ("out_dim", out_dim)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if n_test < 1 or teacher_width < 1 or teacher_depth < 1:
        raise ValueError("n_test, teacher_width and teacher_depth must be >= 1")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    native = native_dim(manifold, intrinsic_dim)
    if ambient_dim is not None and ambient_dim < native:
        raise ValueError(f"ambient_dim must be >= {native} for this manifold, got {ambient_dim}")

    def stream(k: int) -> np.random.Generator:
        return np.random.default_rng([seed, k])

    embed_seed = [seed, 3]
    target = standardised_teacher(
        intrinsic_dim, manifold, ambient_dim, teacher_width, teacher_depth, out_dim, seed
    )
    x_train = _inputs(manifold, n_train, intrinsic_dim, ambient_dim, stream(1), embed_seed)
    x_test = _inputs(manifold, n_test, intrinsic_dim, ambient_dim, stream(2), embed_seed)
    y_train = target(x_train)
    y_test = target(x_test)
    if noise_std > 0:
        y_train = y_train + noise_std * stream(5).standard_normal(y_train.shape)
    return {
        "x_train": x_train.astype(np.float32),
        "y_train": y_train.astype(np.float32),
        "x_test": x_test.astype(np.float32),
        "y_test": y_test.astype(np.float32),
    }


#: Exercise 5's mystery data: the torus dimension and seed live here, not in the notebook.
_MYSTERY = {"intrinsic_dim": 3, "seed": 9, "ambient_dim": 16}


def mystery_torus_dataset(n_train: int = 4000, n_test: int = 1000) -> dict[str, np.ndarray]:
    """Teacher data on a flat torus of a dimension the caller is not told (exercise 5).

    The torus is rotated by a random isometry into a fixed ambient space (16 coordinates), so
    that the number of columns does not give its dimension away; distances, hence 1-NN
    regression and TwoNN, are unchanged by the rotation. Same keys as
    :func:`teacher_student_dataset`."""
    return teacher_student_dataset(n_train=n_train, n_test=n_test, manifold="torus", **_MYSTERY)
