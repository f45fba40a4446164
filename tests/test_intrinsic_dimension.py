"""Intrinsic-dimension estimators against scikit-dimension (same data, same numbers),
against the known dimension of sampled manifolds, and against brute-force distances."""

from __future__ import annotations

import numpy as np
import pytest
import skdim
from scipy.spatial.distance import cdist
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from scalinglab.data.manifolds import (
    embed_isometric,
    sample_cosine_surface,
    sample_hypersphere,
    sample_linear_subspace,
    sample_swiss_roll,
    sample_torus,
)
from scalinglab.intrinsic_dimension import (
    knn_distances,
    layer_dimensions,
    mle_levina_bickel,
    mle_local,
    pca_dimension,
    twonn,
    twonn_fit,
    twonn_ratios,
    unique_points,
)

# name -> (sampler(n, rng), true intrinsic dimension)
KNOWN = {
    "circle": (lambda n, rng: sample_hypersphere(n, 1, rng), 1),
    "sphere2": (lambda n, rng: sample_hypersphere(n, 2, rng), 2),
    "sphere5": (lambda n, rng: sample_hypersphere(n, 5, rng), 5),
    "subspace4_in_20": (lambda n, rng: sample_linear_subspace(n, 4, 20, rng), 4),
    "torus2": (lambda n, rng: sample_torus(n, 2, rng), 2),
    "torus3": (lambda n, rng: sample_torus(n, 3, rng), 3),
    "swiss_roll": (lambda n, rng: sample_swiss_roll(n, rng), 2),
    "cosine_surface": (lambda n, rng: sample_cosine_surface(n, rng), 2),
    "sphere3_in_40": (lambda n, rng: embed_isometric(sample_hypersphere(n, 3, rng), 40, rng), 3),
}


def _data(name, n=2000, seed=0):
    sampler, d = KNOWN[name]
    return sampler(n, np.random.default_rng(seed)), d


@pytest.fixture(scope="module")
def digits():
    return load_digits().data.astype(np.float64)


# --- agreement with scikit-dimension on the same data ------------------------------------


@pytest.mark.parametrize("name", ["sphere5", "swiss_roll", "torus3", "sphere3_in_40"])
@pytest.mark.parametrize("discard", [0.1, 0.25, 0.5])
def test_twonn_linear_matches_skdim(name, discard):
    x, _ = _data(name, n=800, seed=1)
    ref = skdim.id.TwoNN(discard_fraction=discard).fit(x).dimension_
    assert twonn(x, discard_fraction=discard) == pytest.approx(ref, rel=1e-10)


# skdim also computes the (unused) linear-fit points, whose last one is log(0) at discard 0.
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
@pytest.mark.parametrize("name", ["sphere2", "subspace4_in_20", "cosine_surface"])
@pytest.mark.parametrize("discard", [0.0, 0.1, 0.3])
def test_twonn_mle_matches_skdim(name, discard):
    x, _ = _data(name, n=800, seed=2)
    ref = skdim.id.TwoNN(discard_fraction=discard, method="mle").fit(x).dimension_
    assert twonn(x, discard_fraction=discard, method="mle") == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("name", ["sphere5", "swiss_roll", "torus2"])
@pytest.mark.parametrize("k", [5, 10, 20])
@pytest.mark.parametrize("unbiased", [False, True])
def test_levina_bickel_matches_skdim(name, k, unbiased):
    x, _ = _data(name, n=600, seed=3)
    est = skdim.id.MLE(unbiased=unbiased)
    # skdim's comb="mle" is the MacKay--Ghahramani harmonic mean; "mean" is the original.
    ref_mackay = est.fit(x, n_neighbors=k, comb="mle").dimension_
    np.testing.assert_allclose(mle_local(x, k, unbiased=unbiased), est.dimension_pw_, rtol=1e-10)
    ref_mean = est.fit(x, n_neighbors=k, comb="mean").dimension_
    assert mle_levina_bickel(x, k, unbiased=unbiased) == pytest.approx(ref_mackay, rel=1e-10)
    got_mean = mle_levina_bickel(x, k, unbiased=unbiased, average="mean")
    assert got_mean == pytest.approx(ref_mean, rel=1e-10)


def test_levina_bickel_k_range_is_mean_over_k():
    x, _ = _data("torus2", n=500, seed=4)
    refs = [skdim.id.MLE().fit(x, n_neighbors=k).dimension_ for k in range(10, 21)]
    assert mle_levina_bickel(x, (10, 20)) == pytest.approx(np.mean(refs), rel=1e-10)


def test_digits_match_skdim(digits):
    # The digits have no duplicate rows, so skdim sees exactly the same points.
    assert len(unique_points(digits)) == len(digits)
    assert twonn(digits) == pytest.approx(skdim.id.TwoNN().fit(digits).dimension_, rel=1e-10)
    ref = skdim.id.MLE().fit(digits, n_neighbors=20).dimension_
    assert mle_levina_bickel(digits, 20) == pytest.approx(ref, rel=1e-10)
    # The chapter's claim: a surface of dimension < 10 in 64 pixels, PCA needs far more.
    assert max(twonn(digits), mle_levina_bickel(digits, 20)) < 10 < pca_dimension(digits) < 64


# --- accuracy on manifolds of known dimension --------------------------------------------


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_estimators_recover_known_dimension_within_10_percent(name):
    x, d = _data(name, n=2000, seed=0)
    assert twonn(x) == pytest.approx(d, rel=0.10)
    assert twonn(x, method="mle") == pytest.approx(d, rel=0.10)
    assert mle_levina_bickel(x, 20) == pytest.approx(d, rel=0.10)


@pytest.mark.parametrize("d", [2, 5])
@pytest.mark.parametrize("n", [1000, 3000])
def test_low_dimensional_spheres_within_10_percent_from_1000_points(d, n):
    x = sample_hypersphere(n, d, np.random.default_rng(d * 100 + n))
    assert twonn(x) == pytest.approx(d, rel=0.10)
    assert mle_levina_bickel(x, 20) == pytest.approx(d, rel=0.10)


@pytest.mark.parametrize("n", [1000, 3000])
def test_estimators_underestimate_high_dimension(n):
    # Few samples per dimension: neighbourhoods are not small, the boundary and curvature
    # of the neighbourhood bias the estimate downwards (Levina & Bickel 2004, Sec. 4).
    d = 20
    x = sample_hypersphere(n, d, np.random.default_rng(d * 100 + n))
    assert twonn(x) < 0.9 * d
    assert mle_levina_bickel(x, 20) < 0.9 * d


@pytest.mark.parametrize(("d", "rel"), [(2, 0.05), (4, 0.05), (8, 0.2)])
def test_nearest_neighbour_spacing_scales_as_n_to_minus_one_over_d(d, rel):
    # Poisson model: the mean distance to the nearest neighbour is ~ (rho V_d)^(-1/d).
    ns = np.array([250, 500, 1000, 2000, 4000])
    spacing = [
        np.mean(knn_distances(sample_torus(n, d, np.random.default_rng(n + d)), 1)) for n in ns
    ]
    slope = np.polyfit(np.log(ns), np.log(spacing), 1)[0]
    assert slope == pytest.approx(-1.0 / d, rel=rel)


def test_more_samples_reduce_bias_in_moderate_dimension():
    d = 10
    errs = [abs(twonn(sample_hypersphere(n, d, np.random.default_rng(0))) - d) for n in (100, 4000)]
    assert errs[1] < errs[0] / 2


def test_mean_average_is_biased_above_mackay():
    # Jensen: the arithmetic mean of positive local estimates exceeds their harmonic mean.
    x, _ = _data("sphere2", n=1000, seed=5)
    assert mle_levina_bickel(x, 10, average="mean") > mle_levina_bickel(x, 10)


def test_isometric_embedding_does_not_change_estimates():
    x, _ = _data("torus2", n=700, seed=6)
    y = embed_isometric(x, 30, np.random.default_rng(7))
    assert twonn(y) == pytest.approx(twonn(x), rel=1e-8)
    assert mle_levina_bickel(y, 15) == pytest.approx(mle_levina_bickel(x, 15), rel=1e-8)


def test_scale_and_translation_invariance():
    x, _ = _data("swiss_roll", n=700, seed=8)
    assert twonn(3.7 * x + 11.0) == pytest.approx(twonn(x), rel=1e-8)


# --- building blocks ----------------------------------------------------------------------


def test_knn_distances_match_brute_force():
    x, _ = _data("sphere2", n=300, seed=9)
    full = cdist(x, x)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(knn_distances(x, 7), np.sort(full, axis=1)[:, :7], atol=1e-12)
    ratios = twonn_ratios(x)
    brute = np.sort(full, axis=1)
    np.testing.assert_allclose(ratios, brute[:, 1] / brute[:, 0], rtol=1e-12)
    assert np.all(ratios >= 1.0)


def test_twonn_fit_points_lie_on_slope_d_line():
    x, _ = _data("torus2", n=3000, seed=10)
    fit = twonn_fit(x)
    assert fit.n_points == 3000 and fit.n_kept == 2700
    assert np.all(np.diff(fit.log_mu) >= 0)
    # Closed form of the empirical survival: -log(1 - i/N).
    np.testing.assert_allclose(fit.neg_log_survival, -np.log(1 - np.arange(1, 2701) / 3000))
    resid = fit.neg_log_survival - fit.dimension * fit.log_mu
    assert np.sqrt(np.mean(resid**2)) < 0.1


def test_duplicates_are_dropped_not_infinite():
    x, _ = _data("sphere2", n=500, seed=11)
    with_dups = np.concatenate([x, x[:100], x[:10]])
    assert len(unique_points(with_dups)) == 500
    np.testing.assert_array_equal(unique_points(with_dups), x)
    assert twonn(with_dups) == twonn(x)
    assert twonn(with_dups, method="mle") == twonn(x, method="mle")
    assert mle_levina_bickel(with_dups, 10) == mle_levina_bickel(x, 10)
    assert np.all(knn_distances(with_dups, 3) > 0)


@pytest.mark.parametrize("explained", [0.5, 0.9, 0.95, 0.99])
def test_pca_dimension_matches_scikit_learn(digits, explained):
    ref = PCA(n_components=explained, svd_solver="full").fit(digits).n_components_
    assert pca_dimension(digits, explained) == ref


def test_pca_overcounts_curved_manifolds():
    # A circle spans a plane, a flat 2-torus spans R^4: PCA counts linear extent.
    assert pca_dimension(_data("circle")[0], 0.95) == 2
    assert pca_dimension(_data("torus2")[0], 0.95) == 4
    assert pca_dimension(_data("swiss_roll")[0], 0.95) == 3
    assert pca_dimension(_data("subspace4_in_20")[0], 0.999) == 4


@pytest.mark.slow
def test_layer_dimensions_of_trained_mlp_match_skdim_and_decrease():
    torch = pytest.importorskip("torch")
    from scalinglab.data.digits import load_digits_split
    from scalinglab.engine.training import train_classifier
    from scalinglab.models.mlp import MLP

    data = load_digits_split(test_size=0.4, seed=0)
    x = data["x_test"].astype(np.float64)
    untrained, model = MLP(64, 64, 3, 10, seed=0), MLP(64, 64, 3, 10, seed=0)
    train_classifier(model, data, steps=300, lr=3e-3, log_every=None, seed=0, device="cpu")
    with torch.no_grad():
        hidden = model.hidden(torch.as_tensor(x, dtype=torch.float32))
    reference = [
        skdim.id.TwoNN().fit(z).dimension_ for z in [x] + [h.double().numpy() for h in hidden]
    ]
    trained = layer_dimensions(model, x)
    np.testing.assert_allclose(trained, reference, rtol=1e-8)
    # Ansuini et al. (2019): training lowers the dimension of the last hidden layer, below
    # that of the input and of the same layer at initialisation.
    assert trained[-1] < trained[0]
    assert trained[-1] < layer_dimensions(untrained, x)[-1]
    assert len(layer_dimensions(model, x, estimator=lambda z: mle_levina_bickel(z, 20))) == 4


@pytest.mark.parametrize(
    "call",
    [
        lambda x: twonn(x, discard_fraction=1.0),
        lambda x: twonn(x, method="ols"),
        lambda x: twonn(x[:2]),
        lambda x: mle_levina_bickel(x, 1),
        lambda x: mle_levina_bickel(x, 2, unbiased=True),
        lambda x: mle_levina_bickel(x, 5, average="median"),
        lambda x: knn_distances(x, 0),
        lambda x: knn_distances(x[:5], 5),
        lambda x: pca_dimension(x, 0.0),
    ],
)
def test_invalid_arguments_raise(call):
    x, _ = _data("sphere2", n=50, seed=0)
    with pytest.raises(ValueError):
        call(x)


def test_noise_inflates_twonn_at_small_scales_and_decimation_reveals_d():
    """Chapter 3's noise caveat (Facco et al. 2017: use block analysis / decimation). A flat
    2-torus rotated into R^10, 4000 points, isotropic noise sigma in every coordinate; TwoNN
    on nested random subsets of 4000 ... 250 points (same seeds as the page)."""
    torus10 = embed_isometric(
        sample_torus(4000, 2, np.random.default_rng(1)), 10, np.random.default_rng(2)
    )
    keep = [4000, 2000, 1000, 500, 250]
    order = np.random.default_rng(4).permutation(len(torus10))
    curves = {}
    for sigma in (0.0, 0.01, 0.03):
        x = torus10 + sigma * np.random.default_rng(3).standard_normal(torus10.shape)
        curves[sigma] = np.array([twonn(x[order[:m]]) for m in keep])
    # Without noise: d = 2 within 10 % at every scale (the page's "about 2").
    assert np.all(np.abs(curves[0.0] - 2) < 0.2), curves[0.0]
    # With noise the full-data estimate is inflated ("more than 6" for sigma = 0.03) ...
    assert curves[0.01][0] > 3.0 and curves[0.03][0] > 6.0
    # ... and decimation (coarser scales) brings it down monotonically towards 2,
    assert np.all(np.diff(curves[0.03]) < 0) and np.all(np.diff(curves[0.01]) < 0)
    # without reaching it yet at 250 points for sigma = 0.03 (the page says so).
    assert 2.2 < curves[0.03][-1] < curves[0.03][0] / 2
    assert abs(curves[0.01][-1] - 2) < 0.3


@pytest.fixture(scope="module")
def digits_profiles():
    """The page's five seeds: TwoNN profiles (input + 3 hidden layers) of the held-out digits
    before and after training, and the seed-0 networks."""
    pytest.importorskip("torch")
    from scalinglab.data.digits import load_digits_split
    from scalinglab.engine.training import train_classifier
    from scalinglab.models.mlp import MLP

    data = load_digits_split(test_size=0.4, seed=0)
    x = data["x_test"].astype(np.float64)
    before, after, nets = [], [], {}
    for seed in range(5):
        net = MLP(64, 64, 3, 10, seed=seed)
        before.append(layer_dimensions(net, x))
        if seed == 0:
            nets["untrained"] = MLP(64, 64, 3, 10, seed=0)
        train_classifier(
            net, data, steps=300, lr=3e-3, batch_size=None, log_every=None, seed=seed, device="cpu"
        )
        after.append(layer_dimensions(net, x))
        if seed == 0:
            nets["trained"] = net
    return data, np.array(before), np.array(after), nets


@pytest.mark.slow
def test_layer_dimension_profile_over_seeds(digits_profiles):
    _, before, after, _ = digits_profiles
    # Untrained: "about 7.5 to 8 in every layer" (seed means).
    assert np.all((before.mean(axis=0) > 7.4) & (before.mean(axis=0) < 8.1))
    # Trained: the last hidden layer "about 6" on average, from 7.6 at the input ...
    assert 5.8 < after[:, -1].mean() < 6.6 and abs(after[0, 0] - 7.6) < 0.05
    # ... lower than the untrained value for every seed, and decreasing layer by layer on
    # average.
    assert np.all(after[:, -1] < before[:, -1])
    assert np.all(np.diff(after.mean(axis=0)) < 0)
    # "single seeds scatter by a few tenths": the standard deviation over seeds
    assert np.all(after.std(axis=0, ddof=1)[1:] < 0.5)


@pytest.mark.slow
def test_pca_panel_two_coordinates_do_not_separate_every_class(digits_profiles):
    """The page's reading of the PCA panel: on the two plotted coordinates a 5-NN classifier
    gets about a quarter right for the untrained last layer, and about as many for the
    trained layer as for the pixels (both near 60 %), far from the network's own accuracy."""
    torch = pytest.importorskip("torch")
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    data, _, _, nets = digits_profiles
    x, y = data["x_test"].astype(np.float64), data["y_test"]

    def accuracy_2d(z):
        p = PCA(n_components=2).fit_transform(z)
        return cross_val_score(KNeighborsClassifier(5), p, y, cv=5).mean()

    with torch.no_grad():
        last = {
            k: n.hidden(torch.as_tensor(x, dtype=torch.float32))[-1].numpy()
            for k, n in nets.items()
        }
    pixels, untrained, trained = (
        accuracy_2d(x),
        accuracy_2d(last["untrained"]),
        accuracy_2d(last["trained"]),
    )
    assert 0.15 < untrained < 0.35
    assert 0.5 < pixels < 0.7 and 0.5 < trained < 0.7 and abs(trained - pixels) < 0.05
    with torch.no_grad():
        logits = nets["trained"](torch.as_tensor(x, dtype=torch.float32))
    assert (logits.argmax(1).numpy() != y).mean() < 0.04  # the page's 2.5 % test error
