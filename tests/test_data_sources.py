"""Offline data sources: MNIST-1D, digits, label noise, teacher--student, modular arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from mnist1d.data import get_dataset_args, make_dataset
from sklearn.datasets import load_digits

from scalinglab.data.digits import load_digits_split
from scalinglab.data.mnist1d import make_mnist1d
from scalinglab.data.modular import modular_arithmetic_dataset
from scalinglab.data.noise import flip_labels
from scalinglab.data.teacher_student import teacher_student_dataset

# ---------------------------------------------------------------- MNIST-1D


def test_mnist1d_equals_the_reference_generator():
    data = make_mnist1d(n_train=40, n_test=10, seed=3)
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = 50, 0.8, 3
    ref = make_dataset(args)
    np.testing.assert_array_equal(data["x_train"], ref["x"].astype(np.float32))
    np.testing.assert_array_equal(data["y_train"], ref["y"])
    np.testing.assert_array_equal(data["x_test"], ref["x_test"].astype(np.float32))
    np.testing.assert_array_equal(data["y_test"], ref["y_test"])
    assert data["x_train"].shape == (40, ref["x"].shape[1]) == (40, 40)
    assert data["x_train"].dtype == np.float32 and data["y_train"].dtype == np.int64


@pytest.mark.slow
def test_mnist1d_seed_42_is_the_reference_data_set():
    data = make_mnist1d(n_train=4000, n_test=1000, seed=42)
    ref = make_dataset()  # the library's defaults: 5000 samples, seed 42, 80/20 split
    np.testing.assert_array_equal(data["x_train"], ref["x"].astype(np.float32))
    np.testing.assert_array_equal(data["y_train"], ref["y"])
    np.testing.assert_array_equal(data["x_test"], ref["x_test"].astype(np.float32))
    np.testing.assert_array_equal(data["y_test"], ref["y_test"])


def test_mnist1d_deterministic_sizes_and_no_global_rng_side_effect():
    np.random.seed(123)  # noqa: NPY002 -- checking that we leave the legacy state alone
    before = np.random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    a = make_mnist1d(n_train=33, n_test=7, seed=1)
    assert np.random.random() == before  # noqa: NPY002
    b = make_mnist1d(n_train=33, n_test=7, seed=1)
    c = make_mnist1d(n_train=33, n_test=7, seed=2)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["x_train"], c["x_train"])
    assert len(a["x_train"]) == 33 and len(a["x_test"]) == 7  # not a multiple of 10
    a["x_train"][:] = 0  # callers may modify their copy without corrupting the cache
    assert make_mnist1d(n_train=33, n_test=7, seed=1)["x_train"].any()


def test_mnist1d_label_noise_only_on_train():
    clean = make_mnist1d(n_train=200, n_test=50, seed=0)
    noisy = make_mnist1d(n_train=200, n_test=50, label_noise=0.15, seed=0)
    assert np.sum(clean["y_train"] != noisy["y_train"]) == 30
    np.testing.assert_array_equal(clean["y_test"], noisy["y_test"])
    np.testing.assert_array_equal(clean["x_train"], noisy["x_train"])


# ---------------------------------------------------------------- digits


def test_digits_split():
    data = load_digits_split(test_size=0.25, seed=0)
    ref = load_digits()
    assert len(data["x_train"]) + len(data["x_test"]) == len(ref.target) == 1797
    assert data["x_train"].shape[1] == 64 and data["x_train"].dtype == np.float32
    assert data["x_train"].min() == 0.0 and data["x_train"].max() == 1.0
    # stratified: class frequencies agree between the halves within one example per class
    train_counts = np.bincount(data["y_train"], minlength=10) / len(data["y_train"])
    test_counts = np.bincount(data["y_test"], minlength=10) / len(data["y_test"])
    assert np.abs(train_counts - test_counts).max() < 1.5 / len(data["y_test"])
    # every example is a real digit image, scaled by 1/16
    images = {row.tobytes() for row in (ref.data / 16).astype(np.float32)}
    assert all(row.tobytes() in images for row in data["x_test"])
    with pytest.raises(ValueError):
        load_digits_split(test_size=1.5)


# ---------------------------------------------------------------- label noise


@pytest.mark.parametrize(
    ("n", "fraction", "n_classes"), [(1000, 0.15, 10), (37, 0.5, 2), (10, 0.0, 3)]
)
def test_flip_labels_exact_fraction_to_a_different_class(n, fraction, n_classes):
    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, size=n)
    y_noisy, mask = flip_labels(y, fraction, n_classes, np.random.default_rng(1))
    assert mask.sum() == round(fraction * n)
    assert np.all(y_noisy[mask] != y[mask]) and np.array_equal(y_noisy[~mask], y[~mask])
    assert y_noisy.min() >= 0 and y_noisy.max() < n_classes
    again, mask2 = flip_labels(y, fraction, n_classes, np.random.default_rng(1))
    assert np.array_equal(again, y_noisy) and np.array_equal(mask, mask2)


def test_flip_labels_uniform_over_other_classes():
    y = np.zeros(90000, dtype=np.int64)
    y_noisy, _ = flip_labels(y, 1.0, 4, np.random.default_rng(0))
    freq = np.bincount(y_noisy, minlength=4) / y.size
    assert freq[0] == 0
    np.testing.assert_allclose(freq[1:], 1 / 3, atol=5 * np.sqrt(2 / 9 / y.size))


@pytest.mark.parametrize(
    ("y", "fraction", "n_classes"),
    [
        (np.array([0, 1]), 1.2, 2),
        (np.array([0, 1]), 0.5, 1),
        (np.array([0, 5]), 0.5, 3),
        (np.array([0.5]), 0.5, 2),
    ],
)
def test_flip_labels_bad_arguments(y, fraction, n_classes):
    with pytest.raises(ValueError):
        flip_labels(y, fraction, n_classes, np.random.default_rng(0))


# ---------------------------------------------------------------- teacher--student


@pytest.mark.parametrize(
    ("manifold", "d", "native"), [("sphere", 3, 4), ("torus", 2, 4), ("subspace", 3, 3)]
)
def test_teacher_student_geometry(manifold, d, native):
    data = teacher_student_dataset(
        300, 100, intrinsic_dim=d, manifold=manifold, ambient_dim=12, seed=0
    )
    x = data["x_train"].astype(np.float64)
    assert x.shape == (300, 12) and data["y_train"].shape == (300, 1)
    # the embedding is linear and isometric: the points span exactly `native` directions
    sv = np.linalg.svd(x, compute_uv=False)
    assert np.sum(sv > 1e-4 * sv[0]) == native
    if manifold == "sphere":
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    if manifold == "torus":
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.sqrt(d), atol=1e-5)


def test_teacher_student_nested_and_smooth():
    small = teacher_student_dataset(100, 50, intrinsic_dim=2, manifold="torus", seed=4)
    big = teacher_student_dataset(400, 50, intrinsic_dim=2, manifold="torus", seed=4)
    np.testing.assert_array_equal(small["x_train"], big["x_train"][:100])
    np.testing.assert_array_equal(small["y_test"], big["y_test"])
    assert 0.5 < big["y_train"].std() < 2.0  # standardised on a reference sample
    # smooth target: nearby inputs have nearby labels (nearest-neighbour differences shrink)
    x, y = big["x_train"], big["y_train"][:, 0]
    dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    nn = dist.argmin(1)
    assert np.mean((y - y[nn]) ** 2) < 0.1 * 2 * y.var()
    other = teacher_student_dataset(100, 50, intrinsic_dim=2, manifold="torus", seed=5)
    assert not np.allclose(other["y_train"], small["y_train"])


def test_teacher_student_bad_arguments():
    with pytest.raises(ValueError, match="manifold"):
        teacher_student_dataset(manifold="klein")
    with pytest.raises(ValueError, match="ambient_dim"):
        teacher_student_dataset(intrinsic_dim=3, manifold="torus", ambient_dim=4)
    with pytest.raises(ValueError):
        teacher_student_dataset(n_train=0)


# ---------------------------------------------------------------- modular arithmetic


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_modular_arithmetic_is_correct_and_split(op):
    p = 13
    data = modular_arithmetic_dataset(p=p, op=op, train_fraction=0.3, seed=0)
    x = np.concatenate([data["x_train"], data["x_test"]])
    y = np.concatenate([data["y_train"], data["y_test"]])
    n_total = p * p if op != "/" else p * (p - 1)
    assert len(x) == n_total and len(data["x_train"]) == round(0.3 * n_total)
    assert len({tuple(r) for r in x}) == n_total  # disjoint split covering the whole table
    assert np.all(x[:, 2] == p)  # the "=" token
    for (a, b, _), c in zip(x, y, strict=True):
        if op == "+":
            assert c == (a + b) % p
        elif op == "-":
            assert c == (a - b) % p
        elif op == "*":
            assert c == (a * b) % p
        else:
            assert (c * b) % p == a  # c = a / b  <=>  c * b = a
    onehot = modular_arithmetic_dataset(p=p, op=op, seed=0, encoding="onehot")
    assert onehot["x_train"].shape[1] == 2 * p
    np.testing.assert_array_equal(onehot["x_train"][:, :p].argmax(1), data["x_train"][:, 0])
    np.testing.assert_array_equal(onehot["x_train"][:, p:].argmax(1), data["x_train"][:, 1])


def test_modular_bad_arguments():
    with pytest.raises(ValueError, match="prime"):
        modular_arithmetic_dataset(p=12)
    with pytest.raises(ValueError, match="op"):
        modular_arithmetic_dataset(p=7, op="^")
    with pytest.raises(ValueError):
        modular_arithmetic_dataset(p=7, train_fraction=1.0)
