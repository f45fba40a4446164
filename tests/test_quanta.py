"""Chapter 8: multitask sparse parity and the quantization model, against independent
references (scipy's Zipf distribution and Hurwitz zeta, brute-force parities, torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import special, stats

from scalinglab.data.sparse_parity import MultitaskSparseParity, draw_subsets, zipf_frequencies
from scalinglab.quanta import (
    LN2,
    compute_exponent,
    data_exponent,
    first_crossing,
    learned,
    loglog_slope,
    mean_loss,
    n_learned_from_data,
    tail_loss,
    theory_slope,
    train_quanta,
)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0])
def test_zipf_frequencies_match_scipy(alpha):
    # scipy's zipfian(a, n) has pmf proportional to k^-a on k = 1..n: here a = alpha + 1
    p = zipf_frequencies(50, alpha)
    ref = stats.zipfian(alpha + 1, 50).pmf(np.arange(1, 51))
    assert np.allclose(p, ref, rtol=1e-12, atol=0)


def test_subsets_distinct_sorted_and_too_few_refused():
    s = draw_subsets(100, 16, 2, seed=3)
    assert s.shape == (100, 2)
    assert len({tuple(r) for r in s}) == 100
    assert (np.diff(s, axis=1) > 0).all() and s.min() >= 0 and s.max() < 16
    with pytest.raises(ValueError):
        draw_subsets(121, 16, 2, seed=0)  # only C(16, 2) = 120 exist


def test_subset_bits_reads_only_the_first_bits():
    # the feature-sharing control: 32 input bits, subsets drawn from the first 16 only --
    # exactly the subsets of the 16-bit task with the same seed, the other 16 bits noise
    wide = MultitaskSparseParity(n_tasks=100, n_bits=32, k_sparse=2, subset_seed=0, subset_bits=16)
    narrow = MultitaskSparseParity(n_tasks=100, n_bits=16, k_sparse=2, subset_seed=0)
    assert wide.in_dim == 132 and np.array_equal(wide.subsets, narrow.subsets)
    assert wide.subsets.max() < 16
    tasks = torch.arange(100).repeat(4)
    bits = torch.randint(0, 2, (400, 32), generator=torch.Generator().manual_seed(0))
    flipped = bits.clone()
    flipped[:, 16:] = 1 - flipped[:, 16:]
    _, y = wide.encode(tasks, bits)
    _, y_flip = wide.encode(tasks, flipped)
    _, y_narrow = narrow.encode(tasks, bits[:, :16])
    assert torch.equal(y, y_flip) and torch.equal(y, y_narrow)
    with pytest.raises(ValueError):
        MultitaskSparseParity(n_tasks=10, n_bits=8, k_sparse=2, subset_bits=9)


def test_parity_labels_and_control_bits_brute_force():
    src = MultitaskSparseParity(n_tasks=20, n_bits=8, k_sparse=3, alpha=0.5, subset_seed=1)
    x, y, t = src.sample(2000, torch.Generator().manual_seed(0))
    x, y, t = x.numpy(), y.numpy(), t.numpy()
    assert x.shape == (2000, 28)
    code, bits = x[:, :20], x[:, 20:]
    assert (code.sum(1) == 1).all() and (code.argmax(1) == t).all()
    expected = [int(sum(bits[i, j] for j in src.subsets[t[i]])) % 2 for i in range(len(t))]
    assert (y == np.array(expected)).all()


def test_subtasks_drawn_with_zipf_frequencies():
    src = MultitaskSparseParity(n_tasks=10, n_bits=8, k_sparse=2, alpha=1.0)
    n = 200_000
    _, _, t = src.sample(n, torch.Generator().manual_seed(1))
    counts = np.bincount(t.numpy(), minlength=10)
    # chi-square goodness of fit against p_k: a wrong exponent gives p ~ 0 at this n
    assert stats.chisquare(counts, src.probs * n).pvalue > 1e-3


def test_stratified_test_set():
    src = MultitaskSparseParity(n_tasks=5, n_bits=6, k_sparse=2, alpha=0.5)
    x, y, t = src.stratified(7, seed=0)
    assert x.shape == (35, 11) and (np.bincount(t.numpy()) == 7).all()
    assert torch.equal(src.stratified(7, seed=0)[0], x)  # deterministic


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_tail_loss_against_hurwitz_zeta(alpha):
    # sum_{k>n}^{K} k^-s / sum_{k<=K} k^-s with Hurwitz zeta(s, q) = sum_{j>=0} (j+q)^-s
    s, K = alpha + 1, 300
    p = zipf_frequencies(K, alpha)
    n = np.array([0, 1, 5, 37, 299, 300])
    ref = (special.zeta(s, n + 1) - special.zeta(s, K + 1)) / (
        special.zeta(s, 1) - special.zeta(s, K + 1)
    )
    assert np.allclose(tail_loss(p, n), LN2 * ref, rtol=1e-10, atol=1e-15)
    assert tail_loss(p, 0) == pytest.approx(LN2) and tail_loss(p, K) == 0.0


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_exponents_of_the_infinite_tail(alpha):
    # with very many subtasks the tail sum is ~ n^-alpha (Euler-Maclaurin: corrections O(1/n))
    p = zipf_frequencies(2_000_000, alpha)
    n = np.geomspace(100, 2000, 6)
    assert theory_slope(p, n) == pytest.approx(alpha, rel=0.02)
    # data: quantum k learned once p_k D >= tau, so L(D) ~ D^-alpha/(alpha+1)
    D = np.geomspace(1e5, 1e7, 6)
    L = tail_loss(p, n_learned_from_data(p, D, tau=10.0))
    assert loglog_slope(D, L) == pytest.approx(data_exponent(alpha), rel=0.05)
    assert compute_exponent(alpha) == pytest.approx(alpha / (alpha + 2))


def test_finite_tail_is_steeper_than_alpha():
    # the cut-off at n_tasks bends the curve down: the local slope exceeds alpha
    p = zipf_frequencies(100, 0.5)
    assert theory_slope(p, [5, 10, 20, 40]) > 0.5 + 0.1


def test_learned_mean_loss_and_first_crossing():
    loss = np.array([[0.7, 0.7, 0.7], [0.01, 0.7, 0.7], [0.01, 0.05, 0.7], [0.01, 0.01, 0.3]])
    assert learned(loss[-1]).tolist() == [True, True, False]
    p = np.array([0.5, 0.3, 0.2])
    assert mean_loss(loss, p) == pytest.approx(loss @ p)
    assert np.allclose(first_crossing([1, 2, 3, 4], loss, 0.1), [2, 3, np.nan], equal_nan=True)
    # a value that dips below and comes back up is not learned from the dip
    bounce = np.array([[0.7], [0.01], [0.6], [0.01]])
    assert first_crossing([1, 2, 3, 4], bounce, 0.1)[0] == 4


def test_train_quanta_metrics_match_torch_and_learn_the_top_subtask():
    torch.manual_seed(0)
    recs = train_quanta(
        alpha=1.0,
        widths=[8, 32],
        seeds=[0],
        n_tasks=10,
        n_bits=8,
        steps=300,
        batch_size=256,
        log_at=[100],
        per_task_test=64,
    )
    assert [r["width"] for r in recs] == [8, 32]
    assert recs[0]["n_params"] == (18 + 1) * 8 + (8 + 1) * 2
    r = recs[1]
    assert r["step"] == [0, 100, 300] and r["examples"] == [0, 25600, 76800]
    tl = np.array(r["task_loss"])
    assert tl.shape == (3, 10)
    # the most frequent subtask is learned within 300 steps, the rarest is not
    assert tl[-1, 0] < 0.1 * LN2 < tl[-1, -1]
    # the recorded per-task loss is torch's cross-entropy of a fresh untrained model
    from scalinglab.models.mlp import MLP

    src = MultitaskSparseParity(10, 8, 2, 1.0, 0)
    x, y, t = src.stratified(64, 12345)
    net = MLP(src.in_dim, 32, 1, 2, seed=0)
    with torch.no_grad():
        ce = F.cross_entropy(net(x), y, reduction="none").view(10, 64).mean(1)
    assert np.allclose(tl[0], ce.numpy(), atol=2e-5)
    assert math.isclose(float(np.sum(src.probs)), 1.0)


# --------------------------------------------------------------------------- the shipped records
# Every number the page states comes from these records; the tests below pin them.

ALPHAS = (0.5, 1.0)


@pytest.fixture(scope="module")
def records():
    from scalinglab.quanta import load_records

    return load_records("ch08_quanta")


def test_records_config_names_its_command():
    import json

    from scalinglab.quanta import RECORDS

    cfg = json.loads((RECORDS / "ch08_quanta.config.json").read_text())
    assert (
        "python -m scalinglab.quanta src/scalinglab/records/ch08_quanta.config.json"
        in (cfg["description"])
    )
    assert {r["alpha"] for r in cfg["runs"]} == set(ALPHAS)


def test_sweeps_span_at_least_one_and_a_half_decades(records):
    from scalinglab.quanta import data_sweep, width_sweep

    for a in ALPHAS:
        w = width_sweep(records, a)
        assert np.log10(w["n_params"].max() / w["n_params"].min()) >= 1.5
        assert len(w["seeds"]) == 3
        d = data_sweep(records, a)
        D = d["examples"][d["examples"] > 0]
        assert np.log10(D.max() / D.min()) >= 2.4 and len(d["seeds"]) == 3
        # the data fit starts where every seed has learned a quantum: about 1.5 decades
        D_fit = D[d["n_learned"].min(0)[d["examples"] > 0] >= 1]
        assert np.log10(D_fit.max() / D_fit.min()) > 1.45


@pytest.mark.parametrize("alpha", ALPHAS)
def test_subtasks_learned_in_order_of_frequency(records, alpha):
    from scalinglab.quanta import data_sweep

    d = data_sweep(records, alpha)
    ranks = np.arange(1, 101)
    for tl in d["task_loss"]:
        dk = first_crossing(d["examples"], tl, 0.1 * LN2)
        ok = np.isfinite(dk)
        assert ok.sum() >= 10
        # the learned subtasks come in the order of their ranks, up to swaps of neighbours
        assert stats.spearmanr(ranks[ok], dk[ok]).statistic > 0.9


def test_learning_time_exponent_recovers_a_known_power_law():
    # reference: step-function losses whose learning times are exactly D_k = 50 p_k^-gamma on
    # a fine geometric grid; the fitted exponent must return gamma (grid error ~ 1 %)
    from scalinglab.quanta import late_start, learning_time_exponent

    p = zipf_frequencies(60, 1.0)
    D = np.geomspace(10, 1e7, 400)
    for gamma in (0.6, 1.0):
        dk = 50 * p**-gamma
        loss = np.where(D[:, None] >= dk[None, :], 0.0, LN2)
        start = late_start(D, loss, 10.0)
        assert start == pytest.approx(10 * dk[0], rel=0.03)
        assert learning_time_exponent(p, D, loss, start) == pytest.approx(gamma, rel=0.02)


@pytest.fixture(scope="module")
def long_records():
    from scalinglab.quanta import load_records

    return load_records("ch08_quanta_long")


def test_long_width_runs_repeat_the_shipped_sweep(records, long_records):
    # constant learning rate, same seeds and streams: the 6000-step runs at step 3000 are the
    # shipped 3000-step sweep, bit for bit (the page checks it too)
    main = {
        (r["alpha"], r["width"], r["seed"], r["lr"]): r for r in records if r["sweep"] == "width"
    }
    assert len(long_records) == len(main)
    for r in long_records:
        q = main[r["alpha"], r["width"], r["seed"], r["lr"]]
        assert r["task_loss"][r["step"].index(3000)] == q["task_loss"][-1]


@pytest.mark.parametrize("alpha", ALPHAS)
def test_parameter_exponent_is_not_converged(long_records, alpha):
    # the page says so: at both alphas the slope rises with every doubling of the budget
    # (750 -> 6000 steps) by 0.12 to 0.15, each rise more than 3 s.d. of the seeds' rises, with no
    # sign of levelling off; the widest networks keep learning quanta; the measurement is
    # below the prediction at 3000 steps and, for alpha = 0.5, above it at 6000
    from scalinglab.quanta import parameter_exponent_fit

    fits = [parameter_exponent_fit(long_records, alpha, step=s) for s in (750, 1500, 3000, 6000)]
    means = np.array([f["measured"].mean() for f in fits])
    # the same seeds at every budget: each seed's own rise, mean > 3 s.d. of those rises
    per_seed = np.diff(np.array([f["measured"] for f in fits]), axis=0)  # (3 rises, seeds)
    rises = per_seed.mean(1)
    assert (rises > 3 * per_seed.std(1, ddof=1)).all()
    assert (0.115 < rises).all() and (rises < 0.155).all()
    assert abs(rises.mean() - 0.14) < 0.01  # the summary's "about 0.14 per doubling"
    assert rises[-1] > 0.8 * rises[0]  # no levelling off
    n128 = [f["sweep"]["n_learned"][:, -1].mean() for f in fits]
    assert [round(n) for n in n128[2:]] == ([21, 34] if alpha == 0.5 else [14, 21])
    assert means[2] < fits[2]["predicted"]
    if alpha == 0.5:
        assert means[3] > fits[3]["predicted"]
    else:
        assert means[3] < fits[3]["predicted"]


def test_measured_exponent_follows_alpha(records):
    # data: over the late range the theory for 100 quanta hardly moves with alpha (the page:
    # 0.47 and 0.50 for the SGD sweep, 0.50 and 0.51 for the AdamW one), so the data sweep
    # cannot test that the exponent follows alpha
    from scalinglab.quanta import late_data_exponent_fit, load_records, parameter_exponent_fit

    sgd = load_records("ch08_quanta_sgd")
    for recs, lr in ((records, 1e-2), (sgd, 0.3)):
        th = [late_data_exponent_fit(recs, a, lr=lr)["theory"].mean() for a in ALPHAS]
        assert abs(th[1] - th[0]) < 0.05
    # parameters (not converged, see above): at the same budget the exponent is larger for
    # the larger alpha by more than the seeds scatter
    lo, hi = parameter_exponent_fit(records, 0.5), parameter_exponent_fit(records, 1.0)
    spread = max(lo["measured"].std(ddof=1), hi["measured"].std(ddof=1))
    assert hi["measured"].mean() - lo["measured"].mean() > 3 * spread


def test_rare_skill_emerges_while_the_mean_is_smooth(records):
    from scalinglab.quanta import abrupt_skill, largest_step_share, width_sweep

    w = width_sweep(records, 0.5)
    k_star = abrupt_skill(w["task_acc"][0])
    assert k_star is not None and k_star >= 10  # a rare skill: p_k below 1 %
    acc = w["task_acc"][0, :, k_star - 1]
    own = np.log(w["task_loss"][0, :, k_star - 1])
    # one jump carries most of the skill's change, in accuracy and in its own loss ...
    assert largest_step_share(acc) > 0.7 and largest_step_share(own) > 0.6
    # ... while the mean loss changes in many comparable steps, in every seed
    for loss in w["loss"]:
        assert largest_step_share(np.log(loss)) < 0.35


def test_largest_step_share_and_abrupt_skill():
    from scalinglab.quanta import abrupt_skill, largest_step_share

    assert largest_step_share([0, 0, 1, 1]) == 1.0
    assert largest_step_share(np.linspace(0, 1, 5)) == pytest.approx(0.25)
    acc = np.array([[1.0, 0.5, 0.5], [1.0, 0.55, 0.5], [1.0, 1.0, 0.7], [1.0, 1.0, 0.96]])
    assert abrupt_skill(acc) == 2  # subtask 3 rises gradually, subtask 2 jumps
    assert abrupt_skill(np.full((3, 2), 0.5)) is None


def test_widest_networks_are_time_limited(records):
    # the page: the width-192 network of the data sweep, which has spare capacity, has learned
    # about as many quanta by step 3000 as the width-128 networks have
    from scalinglab.quanta import data_sweep, width_sweep

    for a in ALPHAS:
        wide = width_sweep(records, a)["n_learned"][:, -1].mean()
        free = data_sweep(records, a)["n_learned"][:, -1].mean()
        assert 0.75 * free <= wide <= free


def test_learning_rate_control(long_records):
    from scalinglab.quanta import width_sweep

    # the page: after 6000 steps, 1e-2 is best at every width from 7 up, 3e-3 at width 4
    by_lr = {lr: width_sweep(long_records, 0.5, lr=lr) for lr in (0.003, 0.01, 0.03)}
    seed0 = {lr: sw["loss"][sw["seeds"].index(0)] for lr, sw in by_lr.items()}
    widths = by_lr[0.01]["widths"]
    for i, w in enumerate(widths):
        best = min(seed0, key=lambda lr: seed0[lr][i])
        assert best == (0.003 if w == 4 else 0.01), (w, best)


# --------------------------------------------------------------------------- the SGD data sweep
# The page's test of the data law (section 4) and its optimizer control.


@pytest.fixture(scope="module")
def sgd_records():
    from scalinglab.quanta import load_records

    return load_records("ch08_quanta_sgd")


def test_sgd_records_config_names_its_command(sgd_records):
    import json

    from scalinglab.quanta import RECORDS

    cfg = json.loads((RECORDS / "ch08_quanta_sgd.config.json").read_text())
    assert (
        "python -m scalinglab.quanta src/scalinglab/records/ch08_quanta_sgd.config.json"
        in cfg["description"]
    )
    assert {r["alpha"] for r in cfg["runs"]} == set(ALPHAS)
    assert {r["optimizer"] for r in sgd_records} == {"sgd"}
    assert {r["momentum"] for r in sgd_records} == {0.9}


def test_sgd_learning_rate_grid(sgd_records):
    # the page: lr chosen per alpha on seed 0 from {0.1, 0.3, 1, 3} by the lowest final mean
    # loss; 0.3 wins at both alphas and is bracketed: 0.1 is worse below, 1 and 3 above (3
    # does not learn); 0.1, 0.3 and 1 each have 3 seeds
    from scalinglab.quanta import best_learning_rate, data_sweep

    for a in ALPHAS:
        lr, final = best_learning_rate(sgd_records, a)
        assert sorted(final) == [0.1, 0.3, 1.0, 3.0]
        assert lr == SGD_LR
        assert final[0.1] > final[0.3] < final[1.0]
        assert final[3.0] > 0.3  # diverged or stuck near chance (ln 2 = 0.69 at the start)
        for g in (0.1, 0.3, 1.0):
            assert data_sweep(sgd_records, a, g)["seeds"] == [0, 1, 2]
        d = data_sweep(sgd_records, a, lr)
        D = d["examples"][d["examples"] > 0]
        assert np.log10(D.max() / D.min()) > 3.1  # "3.2 decades"


def test_sgd_learning_times_follow_one_over_p(sgd_records):
    # the quantization model's assumption D_k = tau / p_k, met by the tuned SGD run: one
    # constant tau for both alphas (within 3 s.d. of the seeds), learning order = frequency
    # order (Spearman > 0.9 in every seed), gamma within GAMMA_TOL of 1
    from scalinglab.quanta import best_learning_rate, data_sweep, own_examples

    taus = {}
    for a in ALPHAS:
        d = data_sweep(sgd_records, a, best_learning_rate(sgd_records, a)[0])
        ranks = np.arange(1, 101)
        own = np.array([own_examples(d["probs"], d["examples"], tl) for tl in d["task_loss"]])
        for o in own:
            ok = np.isfinite(o)
            assert ok.sum() >= 15
            assert stats.spearmanr(ranks[ok], o[ok] / d["probs"][ok]).statistic > 0.9
        taus[a] = np.array([np.exp(np.nanmean(np.log(o))) for o in own])
        assert round(taus[a].mean(), -3) == TAU[a]
    spread = np.sqrt(taus[0.5].var(ddof=1) + taus[1.0].var(ddof=1))
    assert abs(taus[0.5].mean() - taus[1.0].mean()) < 3 * spread


SGD_LR = 0.3
# tau, the examples of its own a subtask needs with SGD, per alpha (geometric mean over the
# learned subtasks, mean of 3 seeds): the page's "16,000 to 17,000", to the nearest 1000
TAU = {0.5: 17000.0, 1.0: 16000.0}
# The page's section 4, tuned SGD: mean +- s.d. over 3 seeds from D >= 3 D_1 on, the theory
# for 100 quanta over the same D, measured - theory (per seed) with its 95 % t interval,
# gamma, and the slope of the step-shaped loss at the measured learning times (the
# diagnostic).
SGD_LATE = {
    0.5: dict(
        measured=0.55,
        sd=0.01,
        theory=0.47,
        diff=0.073,
        ci=0.006,
        gamma=1.05,
        gamma_ci=(1.01, 1.10),
        z=10,
        step=0.479,
    ),
    1.0: dict(
        measured=0.55,
        sd=0.01,
        theory=0.50,
        diff=0.054,
        ci=0.010,
        gamma=1.01,
        gamma_ci=(0.92, 1.09),
        z=8,
        step=0.527,
    ),
}
# The control, AdamW (the page: 0.68 +- 0.04 and 0.70 +- 0.02 against 0.50 and 0.51).
ADAM_LATE = {
    0.5: dict(measured=0.68, theory=0.50, z=4),
    1.0: dict(measured=0.70, theory=0.51, z=11),
}
ADAM_GAMMA = {0.5: 0.62, 1.0: 0.71}


@pytest.mark.parametrize("alpha", ALPHAS)
def test_sgd_data_exponent_against_theory(sgd_records, alpha):
    # The test on the tuned SGD sweep: where the start-up transient is over
    # (D >= 3 D_1), the measured exponent against the theory's slope for 100 quanta over the
    # same D; the page states both to 2 decimals and the distance in s.d. of the 3 seeds.
    from scalinglab.quanta import late_data_exponent_fit, t_interval

    fit = late_data_exponent_fit(sgd_records, alpha, lr=SGD_LR)
    m, sd, th = fit["measured"].mean(), fit["measured"].std(ddof=1), fit["theory"].mean()
    want = SGD_LATE[alpha]
    assert round(m, 2) == want["measured"] and round(th, 2) == want["theory"]
    assert round(sd, 2) == want["sd"]
    diff, ci = t_interval(fit["measured"] - fit["theory"])
    assert (round(diff, 3), round(ci, 3)) == (want["diff"], want["ci"])
    g = fit["gamma"]
    assert round(g.mean(), 2) == want["gamma"]
    # gamma with the page's own statistic, the 95 % t interval of the mean of 3 seeds:
    # alpha = 0.5, 1.05 (1.01-1.10), which excludes 1 (5 % above it); alpha = 1, 1.01
    # (0.92-1.09), which includes it
    gm, gh = t_interval(g)
    assert (round(gm - gh, 2), round(gm + gh, 2)) == want["gamma_ci"]
    assert (gm - gh > 1.0) == (alpha == 0.5)
    # "close to 1, far from AdamW": the whole interval lies within half of the untuned
    # AdamW control's smallest departure from 1 (1 - 0.71 = 0.29, so 0.14) -- the tolerance
    # is set by the control the page contrasts it with, not by the seeds' spread
    from scalinglab.quanta import load_records

    adam = load_records("ch08_quanta")
    adam_departure = min(1.0 - late_data_exponent_fit(adam, a)["gamma"].mean() for a in ALPHAS)
    assert max(abs(gm - gh - 1.0), abs(gm + gh - 1.0)) < adam_departure / 2
    # S-3: the distance from the theory in s.d. of the seeds' exponents (the page: 8 to 10)
    assert round((m - th) / sd) == want["z"]
    # judged by the seeds alone (the page's words), the law fails: the 95 % t interval of
    # measured - theory excludes 0, on the steep side
    assert diff - ci > 0
    # ... and the step-shaped loss at the measured learning times is what the theory's
    # timing gives: for alpha = 0.5 the theory lies inside the 95 % t interval of its 3 seeds
    # (the seeds' spread sets the tolerance; 0.479 +- 0.015 against 0.473)
    st = np.array(fit["step"])
    assert round(st.mean(), 3) == want["step"]
    if alpha == 0.5:
        assert abs(st.mean() - th) < t_interval(st)[1]
    # like with like: against the step model's own whole-quanta staircase (0.49, 0.53) the
    # step-shaped loss at the measured times is within 0.01 for both alphas (the seeds'
    # spread of the difference, 0.002 and 0.009 s.d., is below that)
    stair = fit["staircase"]
    assert round(stair.mean(), 2) == {0.5: 0.49, 1.0: 0.53}[alpha]
    assert abs((st - stair).mean()) < 0.01


# The error budget of the page's section 4 (data_law_uncertainty at the tuned lr, over the
# tuned lr and its neighbours a factor 3 either side, and the anchoring band: "learned" at
# 0.05 and 0.5 ln 2, the threshold-free anchor matched to the final loss, and the
# whole-quanta staircase): measured - theory at each lr, the envelope's, the band, the
# seeds' 95 % half-width, the two systematics, the 95 % total, the verdict |diff| < total
# and its margin |diff| / total. Values computed from the shipped records, stated on the
# page to 2 or 3 decimals: pinned to 3 (rounding).
BUDGET = {
    ("ch08_quanta_sgd", 0.5): dict(
        by_lr={0.1: 0.069, 0.3: 0.073, 1.0: -0.026},
        env=0.020,
        band=(0.445, 0.558, 0.542, 0.486),
        stat=0.006,
        sys_lr=0.049,
        sys_thr=0.057,
        total=0.083,
        margin=0.89,
    ),
    ("ch08_quanta_sgd", 1.0): dict(
        by_lr={0.1: 0.050, 0.3: 0.054, 1.0: -0.024},
        env=-0.024,
        band=(0.486, 0.529, 0.523, 0.528),
        stat=0.010,
        sys_lr=0.039,
        sys_thr=0.022,
        total=0.049,
        margin=1.10,
    ),
    ("ch08_quanta_bits", 0.5): dict(
        by_lr={0.1: 0.029, 0.3: -0.000, 1.0: -0.079},
        env=-0.001,
        band=(0.418, 0.467, 0.462, 0.461),
        stat=0.028,
        sys_lr=0.054,
        sys_thr=0.025,
        total=0.068,
        margin=0.00,
    ),
    ("ch08_quanta_bits", 1.0): dict(
        by_lr={0.1: 0.026, 0.3: -0.003, 1.0: -0.058},
        env=-0.019,
        band=(0.482, 0.504, 0.501, 0.535),
        stat=0.020,
        sys_lr=0.042,
        sys_thr=0.027,
        total=0.057,
        margin=0.05,
    ),
    ("ch08_quanta_shared", 0.5): dict(
        by_lr={0.1: 0.072, 0.3: 0.032, 1.0: -0.094},
        env=0.015,
        band=(0.419, 0.483, 0.473, 0.465),
        stat=0.062,
        sys_lr=0.083,
        sys_thr=0.032,
        total=0.109,
        margin=0.29,
    ),
    ("ch08_quanta_shared", 1.0): dict(
        by_lr={0.1: 0.089, 0.3: 0.037, 1.0: -0.071},
        env=-0.017,
        band=(0.480, 0.511, 0.505, 0.526),
        stat=0.046,
        sys_lr=0.080,
        sys_thr=0.023,
        total=0.095,
        margin=0.38,
    ),
}


@pytest.mark.parametrize("name, alpha", list(BUDGET))
def test_data_law_error_budget(name, alpha):
    from scalinglab.quanta import (
        best_learning_rate,
        combined_half_width,
        data_law_uncertainty,
        load_records,
    )

    recs = load_records(name)
    lr, grid = best_learning_rate(recs, alpha)
    near = [g for g in sorted(grid) if lr / 3.5 < g < lr * 3.5]
    assert lr == 0.3 and near == [0.1, 0.3, 1.0]  # the chosen rate is bracketed
    u = data_law_uncertainty(recs, alpha, lr, near)
    want = BUDGET[name, alpha]
    got = {g: v[2] for g, v in u["by_lr"].items()}
    assert {g: round(v, 3) + 0.0 for g, v in got.items()} == want["by_lr"]
    assert round(u["envelope_diff"], 3) == want["env"]
    assert tuple(round(v, 3) for v in u["theory_band"].values()) == want["band"]
    assert list(u["theory_band"])[2:] == ["final loss", "staircase"]
    # every rate of the grid and the envelope have 3 seeds on 16 and 32 bits (the 32-bit
    # neighbours' seeds 1 and 2 were added after review 3); 1 on the shared-bit control
    n_seeds = 1 if name == "ch08_quanta_shared" else 3
    assert [v[3] for g, v in u["by_lr"].items() if g != lr] == [n_seeds, n_seeds]
    assert len(u["envelope"]["seeds"]) == n_seeds
    for key, k2 in (("stat", "stat"), ("sys_lr", "sys_lr"), ("sys_threshold", "sys_thr")):
        assert round(u[key], 3) == want[k2]
    assert round(u["total"], 3) == want["total"]
    # the margin the page states next to the verdict, and the 95 % total it rests on
    assert round(abs(u["diff"]) / u["total"], 2) + 0.0 == want["margin"]
    assert u["total"] == combined_half_width(u["se"], u["dof"], (u["sys_lr"], u["sys_threshold"]))
    # the total is wider than the quadrature sum of the three 1-s.d.-like terms (s.e. and
    # half-range / sqrt 3 for a uniform), and narrower than the plain sum of the half-widths
    one_sd = np.sqrt(u["se"] ** 2 + (u["sys_lr"] ** 2 + u["sys_threshold"] ** 2) / 3)
    assert one_sd < u["total"] < u["stat"] + u["sys_lr"] + u["sys_threshold"]
    # the systematics, not the seeds, dominate the budget
    assert max(u["sys_lr"], u["sys_threshold"]) > u["stat"]


def test_what_the_records_support_without_the_budget():
    # S-3 of review 3, the page's words: on 32 bits (both controls) measured - theory is
    # within the seeds' 95 % t interval of 0; on 16 bits it is 0.05-0.07 steeper, outside
    # it, while the rate grid moves it by 0.08-0.10 (range over lr 0.1, 0.3, 1) and the
    # anchoring band by 0.04-0.11 (its full range) -- each as large as the gap
    from scalinglab.quanta import data_law_uncertainty, load_records

    for name in ("ch08_quanta_bits", "ch08_quanta_shared"):
        for a in ALPHAS:
            u = data_law_uncertainty(load_records(name), a, 0.3, [0.1, 0.3, 1.0])
            assert abs(u["diff"]) < u["stat"]
    rng = {}
    for a in ALPHAS:
        u = data_law_uncertainty(load_records("ch08_quanta_sgd"), a, 0.3, [0.1, 0.3, 1.0])
        assert u["diff"] - u["stat"] > 0
        lr_range = max(v[2] for v in u["by_lr"].values()) - min(v[2] for v in u["by_lr"].values())
        band = u["theory_band"].values()
        rng[a] = (round(u["diff"], 2), round(lr_range, 2), round(max(band) - min(band), 2))
    assert rng == {0.5: (0.07, 0.10, 0.11), 1.0: (0.05, 0.08, 0.04)}


def test_anchor_without_a_threshold_and_subtasks_mid_fall():
    # S-4 of review 3: the theory anchored where its step loss equals each seed's final
    # measured loss (no threshold). Measured - theory under that anchor, pinned to 3
    # decimals (the page's table); it lies inside the threshold band in all six cases. And
    # at the end of the 16-bit runs 18-19 (alpha 0.5) and 7-9 (alpha 1) subtasks are
    # between 0.1 ln 2 and 0.5 ln 2: still falling.
    from scalinglab.quanta import (
        LN2,
        data_law_uncertainty,
        late_data_exponent_fit,
        learned,
        load_records,
    )

    want = {
        ("ch08_quanta_sgd", 0.5): 0.005,
        ("ch08_quanta_sgd", 1.0): 0.031,
        ("ch08_quanta_bits", 0.5): -0.034,
        ("ch08_quanta_bits", 1.0): -0.011,
        ("ch08_quanta_shared", 0.5): -0.015,
        ("ch08_quanta_shared", 1.0): 0.021,
    }
    for (name, a), d_w in want.items():
        recs = load_records(name)
        f = late_data_exponent_fit(recs, a, lr=0.3, anchor_threshold=None)
        assert round((f["measured"] - f["theory"]).mean(), 3) == d_w
        # the anchor reproduces each seed's final loss through the exact tail
        assert np.allclose(tail_loss(f["sweep"]["probs"], f["n_end"]), f["sweep"]["loss"][:, -1])
        band = data_law_uncertainty(recs, a, 0.3, [0.3])["theory_band"]
        thresholds = [v for k, v in band.items() if not isinstance(k, str)]
        assert min(thresholds) <= band["final loss"] <= max(thresholds)
    for a, (lo, hi) in {0.5: (18, 19), 1.0: (7, 9)}.items():
        tl = late_data_exponent_fit(load_records("ch08_quanta_sgd"), a, lr=0.3)["sweep"]
        mid = [
            learned(t, 0.5 * LN2).sum() - learned(t, 0.1 * LN2).sum()
            for t in tl["task_loss"][:, -1]
        ]
        assert (min(mid), max(mid)) == (lo, hi)


def test_32_bits_within_the_band():
    # the page: on 32 bits the measured exponent lies within the anchoring band (not "meets
    # the theory"); on 16 bits within it for alpha 0.5 and above it for alpha 1
    from scalinglab.quanta import data_law_uncertainty, load_records

    want = {  # the page's numbers: measured, band (2 decimals)
        ("ch08_quanta_bits", 0.5): (0.43, 0.42, 0.47),
        ("ch08_quanta_bits", 1.0): (0.49, 0.48, 0.54),
        ("ch08_quanta_sgd", 0.5): (0.55, 0.45, 0.56),
        ("ch08_quanta_sgd", 1.0): (0.55, 0.49, 0.53),
    }
    for name, inside in (("ch08_quanta_bits", (True, True)), ("ch08_quanta_sgd", (True, False))):
        for a, ok in zip(ALPHAS, inside, strict=True):
            u = data_law_uncertainty(load_records(name), a, 0.3, [0.3])
            m = u["fit"]["measured"].mean()
            band = u["theory_band"].values()
            assert (min(band) <= m <= max(band)) == ok
            assert (round(m, 2), round(min(band), 2), round(max(band), 2)) == want[name, a]


def test_sixteen_bit_verdict_hangs_on_the_lr_term():
    # S-3 of review 3, the page: with only the tuned alternatives (the chosen rate and the
    # best-rate-per-D envelope) in the learning-rate term, the 95 % total shrinks and the
    # 16-bit alpha = 0.5 case falls outside it too (alpha = 1 stays outside)
    from scalinglab.quanta import combined_half_width, data_law_uncertainty, load_records

    for a in ALPHAS:
        u = data_law_uncertainty(load_records("ch08_quanta_sgd"), a, 0.3, [0.1, 0.3, 1.0])
        tuned = (u["by_lr"][0.3][2], u["envelope_diff"])
        half = (max(tuned) - min(tuned)) / 2
        total = combined_half_width(u["se"], u["dof"], (half, u["sys_threshold"]))
        assert abs(u["diff"]) > total


def _step_records(alpha, tau=17000.0, jitter=0.05, seeds=(0, 1, 2), n_tasks=100, n_logs=100):
    """Records made by the quantization model itself: subtask k's loss is ln 2 until
    D_k = tau / p_k (times a log-normal jitter), 0 after; logged at n_logs log-spaced D over
    the shipped runs' range (batch 512, 10 to 16000 steps)."""
    from scalinglab.quanta import LN2

    p = zipf_frequencies(n_tasks, alpha)
    D = np.unique(np.round(np.geomspace(512 * 10, 512 * 16000, n_logs)))
    recs = []
    for s in seeds:
        dk = tau / p * np.exp(jitter * np.random.default_rng(s).standard_normal(n_tasks))
        tl = np.where(D[:, None] >= dk[None, :], 0.0, LN2)
        recs.append(
            dict(sweep="data", alpha=alpha, lr=0.3, seed=s, n_tasks=n_tasks, width=192,
                 examples=D.tolist(), task_loss=tl.tolist(), task_acc=(tl == 0).tolist())
        )  # fmt: skip
    return recs


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("tau", [5000.0, 17000.0])
def test_data_law_uncertainty_on_the_model_itself(alpha, tau):
    # m1 of review 3, a truth test end to end: records built from the step model (3 seeds,
    # 100 subtasks, D_k = tau / p_k with 5 % jitter; tau = 17000 is the SGD runs' measured
    # tau). With one learning rate the lr systematic is 0. Exact steps leave no room for a
    # threshold: every anchor of the threshold rows gives the same theory (to 2e-3: with
    # jitter the learned set is not exactly the top n, so the loss-matched n is fractional).
    # The measured slope is the step model's own whole-quanta staircase, to 0.01: the
    # staircase is sampled at 100 logged D (over tau 5000-17000 and jitter 0.02-0.1 the
    # largest difference was 0.006). The smooth tail that anchors the page's comparison is
    # flatter than the staircase by the smoothing alone (0.01-0.05 over these ranges), which
    # is why the staircase is a row of the band.
    from scalinglab.quanta import data_law_uncertainty

    u = data_law_uncertainty(_step_records(alpha, tau), alpha, 0.3, [0.3])
    f, band = u["fit"], u["theory_band"]
    centre = f["theory"].mean()
    assert u["sys_lr"] == 0.0
    assert max(abs(v - centre) for k, v in band.items() if k != "staircase") < 2e-3
    assert abs((f["measured"] - f["staircase"]).mean()) < 0.01
    smoothing = band["staircase"] - centre
    assert 0.01 < smoothing < 0.06
    assert u["diff"] == pytest.approx(smoothing, abs=0.01)
    assert u["sys_threshold"] == pytest.approx(smoothing / 2, abs=2e-3)
    # and the learning-time exponent of the model is 1 (jitter only)
    assert abs(f["gamma"].mean() - 1.0) < 0.05


def test_loss_matched_n_inverts_the_tail():
    from scalinglab.quanta import loss_matched_n

    p = zipf_frequencies(100, 0.5)
    n = np.array([0.0, 1.0, 2.5, 33.0, 47.7, 99.2, 100.0])
    assert np.allclose(loss_matched_n(p, tail_loss(p, n)), n)
    assert loss_matched_n(p, LN2) == 0.0 and loss_matched_n(p, 0.0) == 100.0


def test_combined_half_width_closed_forms():
    # the 95 % half-width of (seeds) + (uniform systematics) against closed forms: seeds
    # alone, the t table (4.303 s.e. for 2 degrees of freedom); one uniform on [-h, h],
    # 0.95 h; two equal ones (a triangle on [-2h, 2h]), 2h (1 - sqrt 0.05). 1e6 Monte Carlo
    # draws: the quantile's sampling error is about 0.3 % for the t tail, 0.1 % otherwise
    from scalinglab.quanta import combined_half_width

    assert combined_half_width(0.01, 2, ()) == pytest.approx(0.04303, rel=0.01)
    assert combined_half_width(0.0, 2, (0.05,)) == pytest.approx(0.95 * 0.05, rel=0.005)
    two = 2 * 0.05 * (1 - math.sqrt(0.05))
    assert combined_half_width(0.0, 2, (0.05, 0.05)) == pytest.approx(two, rel=0.005)


def test_seeds_per_arm_against_simulated_t_tests():
    # m7 of review 3. The page: with the shared-bit control's seed spread, 0.02-0.03,
    # resolving 0.03 takes 5-9 seeds per arm for an even chance (50 % power) and 9-17 for
    # 80 %, about twice as many. Reference: the fraction of seeded simulated two-sample t
    # tests (scipy) that reject, at the returned n and one seed fewer (4000 trials: binomial
    # s.e. 0.8 %; tolerance 2.5 points)
    from scalinglab.quanta import seeds_per_arm

    got = {sd: (seeds_per_arm(sd, 0.03, 0.5), seeds_per_arm(sd, 0.03, 0.8)) for sd in (0.02, 0.03)}
    assert got == {0.02: (5, 9), 0.03: (9, 17)}
    rng = np.random.default_rng(0)
    for sd, (_, n) in got.items():
        rates = []
        for k in (n - 1, n):
            x = rng.normal(0.0, sd, (4000, k))
            y = rng.normal(0.03, sd, (4000, k))
            rates.append(np.mean(stats.ttest_ind(x, y, axis=1).pvalue < 0.05))
        assert rates[0] < 0.8 + 0.025 and rates[1] > 0.8 - 0.025


@pytest.mark.parametrize("alpha", ALPHAS)
def test_adam_control_departs_from_theory(records, alpha):
    # The control (AdamW, the page's section 4): the measured exponent lies many s.d. of the
    # seeds above the theory's slope for 100 quanta over the same D, and the learning-time
    # exponent gamma lies below 1 by more than 3 s.d. -- and below the tuned SGD run's.
    from scalinglab.quanta import late_data_exponent_fit

    fit = late_data_exponent_fit(records, alpha)
    m, sd, th = fit["measured"].mean(), fit["measured"].std(ddof=1), fit["theory"].mean()
    assert round(m, 2) == ADAM_LATE[alpha]["measured"]
    assert round(th, 2) == ADAM_LATE[alpha]["theory"]
    assert round((m - th) / sd) == ADAM_LATE[alpha]["z"] and (m - th) / sd > 3
    g = fit["gamma"]
    assert 1.0 - g.mean() > 3 * g.std(ddof=1)
    assert round(g.mean(), 2) == ADAM_GAMMA[alpha]


# --------------------------------------------------------------------------- the bit controls
# The page's feature-sharing controls, each at its tuned lr (3 seeds): measured exponent
# (mean, s.d.), theory, measured - theory with its 95 % t interval, gamma, and the shape term
# (measured slope minus the step-shaped loss's), stated on the page to 2 or 3 decimals.
CONTROLS = {
    ("ch08_quanta_bits", 0.5): dict(
        m=0.43, sd=0.02, th=0.43, diff=0.000, ci=0.028, gamma=1.06, shape=0.027
    ),
    ("ch08_quanta_bits", 1.0): dict(
        m=0.49, sd=0.02, th=0.49, diff=-0.003, ci=0.020, gamma=0.96, shape=0.011
    ),
    ("ch08_quanta_shared", 0.5): dict(
        m=0.46, sd=0.03, th=0.43, diff=0.032, ci=0.062, gamma=1.10, shape=0.045
    ),
    ("ch08_quanta_shared", 1.0): dict(
        m=0.53, sd=0.02, th=0.49, diff=0.037, ci=0.046, gamma=1.05, shape=0.021
    ),
    ("ch08_quanta_sgd", 0.5): dict(
        m=0.55, sd=0.01, th=0.47, diff=0.073, ci=0.006, gamma=1.05, shape=0.068
    ),
    ("ch08_quanta_sgd", 1.0): dict(
        m=0.55, sd=0.01, th=0.50, diff=0.054, ci=0.010, gamma=1.01, shape=0.027
    ),
}


@pytest.mark.parametrize("name, alpha", list(CONTROLS))
def test_bit_controls(name, alpha):
    from scalinglab.quanta import (
        best_learning_rate,
        late_data_exponent_fit,
        load_records,
        t_interval,
    )

    recs = load_records(name)
    lr, final = best_learning_rate(recs, alpha)
    assert lr == 0.3 and final[0.1] > final[0.3] < final[1.0]  # bracketed
    f = late_data_exponent_fit(recs, alpha, lr=lr)
    m, st = f["measured"], np.array(f["step"])
    diff, ci = t_interval(m - f["theory"])
    got = dict(
        m=round(m.mean(), 2),
        sd=round(m.std(ddof=1), 2),
        th=round(f["theory"].mean(), 2),
        diff=round(diff, 3) + 0.0,
        ci=round(ci, 3),
        gamma=round(f["gamma"].mean(), 2),
        shape=round(m.mean() - st.mean(), 3),
    )
    assert got == CONTROLS[name, alpha]


def test_shared_control_is_the_16_bit_task_in_32_bits():
    import json

    from scalinglab.quanta import RECORDS, load_records

    cfg = json.loads((RECORDS / "ch08_quanta_shared.config.json").read_text())
    assert (
        "python -m scalinglab.quanta src/scalinglab/records/ch08_quanta_shared.config.json"
        in cfg["description"]
    )
    recs = load_records("ch08_quanta_shared")
    assert {(r["n_bits"], r["subset_bits"], r["subset_seed"]) for r in recs} == {(32, 16, 0)}
    sixteen = {r["subset_seed"] for r in load_records("ch08_quanta_sgd")}
    assert sixteen == {0}  # same subset seed, hence the same subsets (test_subset_bits_...)


def test_shared_control_does_not_isolate_sharing():
    # the page: the shared-bit control lands between 16 and 32 bits and is within the
    # seeds' 95 % interval of both (two-sample: the two t half-widths in quadrature), so it
    # does not isolate feature sharing; its shape term lies between theirs for both alphas
    from scalinglab.quanta import late_data_exponent_fit, load_records, t_interval

    fits = {
        n: {a: late_data_exponent_fit(load_records(n), a, lr=0.3) for a in ALPHAS}
        for n in ("ch08_quanta_sgd", "ch08_quanta_bits", "ch08_quanta_shared")
    }
    for a in ALPHAS:
        d = {n: t_interval(f[a]["measured"] - f[a]["theory"]) for n, f in fits.items()}
        sh = d["ch08_quanta_shared"]
        for other in ("ch08_quanta_sgd", "ch08_quanta_bits"):
            assert abs(sh[0] - d[other][0]) < np.hypot(sh[1], d[other][1])
        assert d["ch08_quanta_bits"][0] < sh[0] < d["ch08_quanta_sgd"][0]
        shape = {n: f[a]["measured"].mean() - np.mean(f[a]["step"]) for n, f in fits.items()}
        assert shape["ch08_quanta_bits"] < shape["ch08_quanta_shared"] < shape["ch08_quanta_sgd"]
        # S-7 of review 3: the share of the 16-bit excess (measured - theory) that goes away
        # when only the input width grows -- about half for alpha 0.5 (0.56), a third for
        # alpha 1 (0.33); of the shape term, 0.34 and 0.23
        gone = 1 - sh[0] / d["ch08_quanta_sgd"][0]
        gone_shape = 1 - shape["ch08_quanta_shared"] / shape["ch08_quanta_sgd"]
        assert (round(gone, 2), round(gone_shape, 2)) == {0.5: (0.56, 0.34), 1.0: (0.33, 0.23)}[a]


def test_exponent_following_alpha_is_not_resolved():
    # the page: at the tuned lr the alpha = 1 minus alpha = 0.5 exponent is +0.062 +- 0.066
    # on 32 bits (theory +0.064) and +0.008 +- 0.025 on 16 bits (theory +0.027): within the
    # seeds' 95 % interval (the two half-widths in quadrature) of 0, i.e. not resolved
    from scalinglab.quanta import late_data_exponent_fit, load_records, t_interval

    want = {"ch08_quanta_bits": (0.062, 0.066, 0.064), "ch08_quanta_sgd": (0.008, 0.025, 0.027)}
    for name, (dm_w, err_w, th_w) in want.items():
        f = {a: late_data_exponent_fit(load_records(name), a, lr=0.3) for a in ALPHAS}
        dm = f[1.0]["measured"].mean() - f[0.5]["measured"].mean()
        err = np.hypot(*(t_interval(f[a]["measured"])[1] for a in ALPHAS))
        dth = f[1.0]["theory"].mean() - f[0.5]["theory"].mean()
        assert (round(dm, 3), round(err, 3), round(dth, 3)) == (dm_w, err_w, th_w)
        assert abs(dm) < err


@pytest.fixture(scope="module")
def bits_records():
    from scalinglab.quanta import load_records

    return load_records("ch08_quanta_bits")


def test_t_interval_matches_the_t_table():
    # Student's t table: t_{0.975, 2} = 4.303 (two-sided 95 %, 2 degrees of freedom)
    from scalinglab.quanta import t_interval

    v = np.array([0.41, 0.43, 0.45])
    m, h = t_interval(v)
    assert m == pytest.approx(0.43)
    assert h == pytest.approx(4.303 * v.std(ddof=1) / math.sqrt(3), rel=1e-3)


def test_envelope_of_one_learning_rate_is_that_run(bits_records):
    # with a single learning rate the best-rate-per-D envelope is the run itself: its slope
    # and theory must be late_data_exponent_fit's, seed for seed
    from scalinglab.quanta import envelope_exponent_fit, late_data_exponent_fit

    env = envelope_exponent_fit(bits_records, 0.5, [0.3], start_lr=0.3)
    fit = late_data_exponent_fit(bits_records, 0.5, lr=0.3)
    assert np.allclose(env["measured"], fit["measured"])
    assert np.allclose(env["theory"], fit["theory"])
    assert (env["best_lr"] == 0.3).all()


def test_adam_learning_rate_check():
    # the page: AdamW over 16000 steps, seed 0; best final loss at 1e-2 (bracketed); measured
    # - theory +0.17 / +0.15 there, +0.20 / +0.21 at 3e-3, -0.03 / +0.005 at 3e-2; gamma 0.95
    # at the best rate for alpha 0.5 and 1.31 at 3e-2 for alpha 1 (one seed: pinned values,
    # no seed spread to set a tolerance from; rounding only)
    import json

    from scalinglab.quanta import RECORDS, best_learning_rate, late_data_exponent_fit, load_records

    cfg = json.loads((RECORDS / "ch08_quanta_adam.config.json").read_text())
    assert "src/scalinglab/records/ch08_quanta_adam.config.json" in cfg["description"]
    adam = load_records("ch08_quanta_adam")
    assert {r["optimizer"] for r in adam} == {"adamw"} and {r["step"][-1] for r in adam} == {16000}
    want = {
        0.5: {0.003: (0.20, 0.65), 0.01: (0.17, 0.95), 0.03: (-0.03, 0.91)},
        1.0: {0.003: (0.21, 0.67), 0.01: (0.15, 0.73), 0.03: (0.005, 1.31)},
    }
    for a in ALPHAS:
        lr, final = best_learning_rate(adam, a)
        assert lr == 0.01 and final[0.003] > final[0.01] < final[0.03]
        # S-6 of review 3: the 3x larger rate that lands on the theory ends with 3.9x
        # (alpha 0.5) and 2.4x (alpha 1) the best rate's final loss
        assert round(final[0.03] / final[0.01], 1) == {0.5: 3.9, 1.0: 2.4}[a]
        for g, (d_w, gamma_w) in want[a].items():
            f = late_data_exponent_fit(adam, a, lr=g)
            d = f["measured"][0] - f["theory"][0]
            assert round(d, 3 if abs(d_w) < 0.01 else 2) == d_w
            assert round(f["gamma"][0], 2) == gamma_w
            if (a, g) == (0.5, 0.01):  # "mostly in the shape": shape term > timing term
                step = f["step"][0]
                assert f["measured"][0] - step > 2 * (step - f["theory"][0]) > 0


# --------------------------------------------------------------------------- the SGD width sweep
# The page's SGD control of the parameter law (section 4): SGD on 32 bits, widths 12-48 for
# 32000 steps -- meant to run until every width stops learning; it does not get there.


@pytest.fixture(scope="module")
def width_records():
    from scalinglab.quanta import load_records

    return load_records("ch08_quanta_width")


def test_width_records_config_names_its_command(width_records):
    import json

    from scalinglab.quanta import RECORDS

    cfg = json.loads((RECORDS / "ch08_quanta_width.config.json").read_text())
    assert (
        "python -m scalinglab.quanta src/scalinglab/records/ch08_quanta_width.config.json "
        "--out src/scalinglab/records/ch08_quanta_width.jsonl" in cfg["description"]
    )
    assert {(r["alpha"], r["optimizer"], r["n_bits"]) for r in width_records} == {
        (a, "sgd", 32) for a in ALPHAS
    }
    # every (alpha, width, seed) once: 2 alphas x 5 widths x 3 seeds
    assert len({(r["alpha"], r["width"], r["seed"]) for r in width_records}) == len(width_records)
    assert len(width_records) == 30


def test_width_convergence_and_fit_against_numpy():
    # the helpers against a direct computation on made-up records: three seeds, four widths,
    # quanta learned about N / 100 (seed s learns s more at the widest), loss the exact tail
    from scalinglab.quanta import parameter_exponent_fit, width_convergence

    probs = zipf_frequencies(100, 1.0)
    recs = []
    for seed in range(3):
        for width, n0 in ((10, 2), (20, 4), (40, 9), (80, 17)):
            n = n0 + seed * (width == 80)
            rows = []
            for k_learned in (n - 1, n):  # one quantum more at the last step
                row = np.full(100, LN2)
                row[:k_learned] = 0.0
                rows.append(row.tolist())
            if width == 80 and seed == 2:
                rows[0] = rows[1]  # this one had already stopped
            recs.append(
                dict(sweep="width", alpha=1.0, width=width, seed=seed, lr=0.3, n_tasks=100,
                     n_params=100 * n0, step=[10, 20], task_loss=rows, task_acc=rows)
            )  # fmt: skip
    conv = width_convergence(recs, 1.0, 0.3)
    assert conv["steps"] == (10, 20)
    assert conv["same_n"].sum() == 1 and conv["same_n"][2, 3]
    f = parameter_exponent_fit(recs, 1.0, lr=0.3)
    N = np.array([100 * n for n in (2, 4, 9, 17)], dtype=float)
    for s in range(3):
        n = np.array([2, 4, 9, 17 + s])
        assert f["n_exponent"][s] == pytest.approx(np.polyfit(np.log(N), np.log(n), 1)[0])
        loss = [tail_loss(probs, k) for k in n]
        assert f["measured"][s] == pytest.approx(-np.polyfit(np.log(N), np.log(loss), 1)[0])
        assert f["step"][s] == pytest.approx(f["measured"][s])  # the loss *is* the step loss
    c = np.exp(np.mean(np.log(N[None, :] / np.array([[2, 4, 9, 17 + s] for s in range(3)]))))
    assert f["c"] == pytest.approx(c)
    assert f["predicted"] == pytest.approx(
        -np.polyfit(np.log(N), np.log(tail_loss(probs, N / c)), 1)[0]
    )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_sgd_width_sweep_is_not_converged(width_records, alpha):
    # the page: between 16000 and 32000 steps the quanta learned still change in 6 and 8 of
    # the 15 networks; the width-48 networks go on learning; the exponent at each doubling.
    # The records are deterministic, so the page's rounded numbers are pinned at their
    # rounding; the claims ("not converged", "passes the prediction at 16000") are checked
    # against the seed spread
    from scalinglab.quanta import parameter_exponent_fit, width_convergence, width_sweep

    conv = width_convergence(width_records, alpha, 0.3)
    assert conv["steps"] == (16000, 32000)
    assert (~conv["same_n"]).sum() == (6 if alpha == 0.5 else 8)
    n48 = [
        width_sweep(width_records, alpha, lr=0.3, step=s)["n_learned"][:, -1]
        for s in (16000, 32000)
    ]
    assert n48[1].mean() - n48[0].mean() > 1.0  # still learning, more than a quantum per seed
    assert [round(n.mean(), 1) for n in n48] == ([12.0, 13.3] if alpha == 0.5 else [9.0, 11.3])
    fits = {
        s: parameter_exponent_fit(width_records, alpha, s, lr=0.3) for s in (8000, 16000, 32000)
    }
    got = [(round(f["measured"].mean(), 2), round(f["predicted"], 2)) for f in fits.values()]
    if alpha == 0.5:
        assert got == [(0.64, 0.59), (0.76, 0.61), (0.80, 0.62)]
        # above the prediction at 32000 by more than 2 s.d. of the seeds, and still rising
        f = fits[32000]
        assert f["measured"].mean() - f["predicted"] > 2 * f["measured"].std(ddof=1)
        assert (fits[32000]["measured"] > fits[8000]["measured"]).all()
    else:
        assert got == [(0.82, 0.96), (1.00, 0.98), (0.95, 1.02)]
        f16, f32 = fits[16000], fits[32000]
        assert abs(f16["measured"].mean() - f16["predicted"]) < 3 * f16["measured"].std(ddof=1)
        assert 0.25 < f32["measured"].std(ddof=1) < 0.35  # "the seeds scatter by 0.3"
        assert not f32["use"][0]  # width 12 left out at 32000: one seed lost its quanta
        lost = width_sweep(width_records, alpha, lr=0.3)["n_learned"][:, 0]
        was = width_sweep(width_records, alpha, lr=0.3, step=16000)["n_learned"][:, 0]
        assert ((lost == 0) & (was == 2)).sum() == 1
