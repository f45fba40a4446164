"""Chapter 4's extrapolation machinery against independent references (scipy, enumeration,
torch's FlopCounterMode), and the shipped records against what the page states."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import optimize, stats
from torch.utils.flop_counter import FlopCounterMode

from scalinglab import extrapolation as ex
from scalinglab.data.zipf_lookup import ZipfLookup, zipf_lookup_dataset
from scalinglab.engine.flops import mlp_train_flops_per_example
from scalinglab.fitting import ChinchillaFit, compute_optimal, fit_chinchilla
from scalinglab.models.mlp import MLP, mlp_param_count


# ------------------------------------------------------------------ the source
def test_zipf_lookup_floor_and_expected_loss_against_scipy():
    src = ZipfLookup(n_facts=500, n_bits=12, n_classes=16, zipf_exponent=1.5, noise=0.2, seed=3)
    q = src.answer_probs
    assert src.floor == pytest.approx(stats.entropy(q))  # H(q) in nats
    assert src.floor == pytest.approx(0.990337, abs=1e-6)  # the page's 0.990 for V=16, 20 %
    # the Bayes predictor reaches the floor exactly; the uniform one log V
    bayes = np.log(np.where(np.arange(16)[None, :] == src.targets[:, None], q[0], q[1]))
    assert src.expected_loss(bayes) == pytest.approx(src.floor)
    assert src.expected_loss(np.full((500, 16), -np.log(16))) == pytest.approx(np.log(16))
    # storing the top n facts: reducible loss = (log V - E) * tail mass, by enumeration
    logp = np.full((500, 16), -np.log(16))
    logp[:40] = bayes[:40]
    assert src.expected_loss(logp) - src.floor == pytest.approx(src.reducible_if_stored(40))
    # frequencies are Zipf(1.5): p_1 / p_4 = 4^1.5
    assert src.probs[0] / src.probs[3] == pytest.approx(8.0)
    assert len({tuple(c) for c in src.codes}) == 500  # distinct codes


def test_zipf_lookup_samples_follow_the_source_and_nest():
    src = ZipfLookup(n_facts=50, n_bits=8, n_classes=4, noise=0.3, seed=1)
    items, y = src.sample(200_000, np.random.default_rng(0))
    freq = np.bincount(items, minlength=50) / items.size
    assert np.abs(freq - src.probs).max() < 0.005  # ~4 s.e. of the largest frequency
    hit = (y == src.targets[items]).mean()
    assert hit == pytest.approx(1 - 0.3 + 0.3 / 4, abs=0.005)
    # the paired floor is the Bayes predictor's mean loss on those samples
    assert src.bayes_log_loss(items, y).mean() == pytest.approx(src.floor, abs=0.01)
    small = zipf_lookup_dataset(100, 50, n_facts=64, n_bits=8, seed=2)
    big = zipf_lookup_dataset(300, 50, n_facts=64, n_bits=8, seed=2)
    assert np.array_equal(small["x_train"], big["x_train"][:100])  # nested training sets
    assert np.array_equal(small["y_test"], big["y_test"])  # test set independent of n_train


def test_mlp_flops_are_six_n_per_example_and_match_flop_counter():
    """C = flops_per_example * D with flops_per_example ~ 6N, checked by FlopCounterMode."""
    in_dim, width, depth, out = 24, 64, 2, 16
    net = MLP(in_dim, width, depth, out, seed=0)
    x = torch.randn(32, in_dim)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(x), torch.zeros(32, dtype=torch.long)).backward()
    per_example = mlp_train_flops_per_example(in_dim, width, depth, out)
    # the input layer needs no input gradient: 6N minus 2 x (its weights), biases aside
    assert counter.get_total_flops() / 32 == pytest.approx(per_example, rel=0.02)
    n = mlp_param_count(in_dim, width, depth, out)
    assert 5.0 < per_example / n < 6.0


# ------------------------------------------------------------------ the fits
def test_fit_with_known_floor_recovers_the_law_and_matches_scipy():
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(400, 20000, 6), 6)
    D = np.tile(np.geomspace(4096, 2**20, 6), 6)
    true = ChinchillaFit(E=0.98, A=60.0, B=12.0, alpha=0.6, beta=0.35)
    L = true(N, D) * np.exp(rng.normal(0, 0.002, N.size))
    fit = fit_chinchilla(N, D, L, floor=0.98)
    assert fit.E == 0.98
    assert fit.alpha == pytest.approx(0.6, abs=0.03) and fit.beta == pytest.approx(0.35, abs=0.02)

    def resid(theta):  # least squares in log space: a different loss, nearly the same optimum
        a, b, al, be = theta
        return np.log(np.exp(a - al * np.log(N)) + np.exp(b - be * np.log(D))) - np.log(L - 0.98)

    ref = optimize.least_squares(resid, [4.0, 2.5, 0.5, 0.3]).x
    assert fit.alpha == pytest.approx(ref[2], abs=0.01) and fit.beta == pytest.approx(
        ref[3], abs=0.01
    )
    with pytest.raises(ValueError):
        fit_chinchilla(N, D, L, floor=float(L.min()))


def test_inference_optimal_matches_numerical_minimisation():
    law = ChinchillaFit(E=1.0, A=80.0, B=15.0, alpha=0.7, beta=0.4)
    target = 1.1
    for rho in (0.0, 2.0, 50.0):
        n, d = ex.inference_optimal(law, target, rho)
        assert law(n, d) == pytest.approx(target)

        def cost(log_n, rho=rho, d_fixed=d):  # D from the constraint; D_inf = rho * d fixed
            nn = np.exp(log_n)
            y = target - law.E - law.A * nn**-law.alpha
            dd = (law.B / y) ** (1 / law.beta)
            return 6 * nn * dd + 2 * nn * rho * d_fixed

        lo = np.log((law.A / (target - law.E)) ** (1 / law.alpha)) + 1e-6
        res = optimize.minimize_scalar(
            cost, bounds=(lo, lo + 10), method="bounded", options={"xatol": 1e-10}
        )
        assert np.exp(res.x) == pytest.approx(n, rel=1e-3)
    # no inference: Chinchilla's split, the compute-optimal point of the same loss
    n0, d0 = ex.inference_optimal(law, target, 0.0)
    n_c, d_c = compute_optimal(6 * n0 * d0, law)
    assert n0 == pytest.approx(n_c, rel=1e-6) and d0 == pytest.approx(d_c, rel=1e-6)
    n100, d100 = ex.inference_optimal(law, target, 100.0)
    assert n100 < n0 and d100 > d0  # smaller model, more data


def test_effective_data_and_r_star_round_trip():
    U, R = 1000.0, np.array([0, 1, 3, 7, 15, 31])
    d = ex.effective_data(U, R, 5.0)
    assert d[0] == U and d[1] == pytest.approx(U + 5 * U * (1 - np.exp(-0.2)))
    assert ex.fit_r_star(U, R, d) == pytest.approx(5.0, rel=1e-3)
    fresh_D = np.array([1e3, 1e4, 1e5])
    fresh_L = np.array([2.0, 1.5, 1.0])
    assert ex.effective_from_fresh([1.25], fresh_D, fresh_L)[0] == pytest.approx(10**4.5)


def test_choose_run_minimises_the_law_at_fixed_compute():
    law = ChinchillaFit(E=1.0, A=80.0, B=15.0, alpha=0.7, beta=0.4)
    run = ex.choose_run(law, 3e11, 24, 2, 16)
    assert run["width"] % 8 == 0 and run["C"] == pytest.approx(3e11, rel=0.01)
    per = mlp_train_flops_per_example(24, run["width"], 2, 16)
    for w in (run["width"] - 8, run["width"] + 8):  # neighbours at the same compute do worse
        n = mlp_param_count(24, w, 2, 16)
        assert law(n, 3e11 / mlp_train_flops_per_example(24, w, 2, 16)) > law(run["N"], 3e11 / per)


def test_lr_optimum_is_the_vertex_of_the_parabola_through_the_bracket():
    # an exact parabola in log lr, vertex at lr = 0.02: the three-point vertex recovers it
    grid = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
    losses = {lr: 1.0 + 0.1 * (np.log(lr) - np.log(0.02)) ** 2 for lr in grid}
    eta, L, inside = ex.lr_optimum(losses)
    assert inside and eta == pytest.approx(0.02, rel=1e-9) and L == pytest.approx(1.0)
    # against numpy's quadratic through the same three points, on asymmetric losses
    losses = {0.001: 3.0, 0.003: 2.1, 0.01: 1.7, 0.03: 1.8, 0.1: 5.0}
    c = np.polyfit(np.log([0.003, 0.01, 0.03]), [2.1, 1.7, 1.8], 2)
    eta, L, inside = ex.lr_optimum(losses)
    assert inside and np.log(eta) == pytest.approx(-c[1] / (2 * c[0]))
    assert 0.003 < eta < 0.03 and L <= 1.7
    # at the grid's edge there is no bracket
    assert ex.lr_optimum({0.01: 2.0, 0.03: 1.5, 0.1: 1.2}) == (0.1, 1.2, False)


def test_lr_rule_recovers_a_known_power_law_in_N_and_D():
    rng = np.random.default_rng(0)
    pts = []
    for N in (200, 1000, 5000, 25000):
        for D in (2**15, 2**17, 2**19):
            opt = np.exp(1.0 - 0.3 * np.log(N) - 0.25 * np.log(D) + rng.normal(0, 1e-3))
            grid = opt * np.array([0.3, 1.0, 3.0]) * np.exp(rng.uniform(-0.5, 0.5))
            losses = {float(g): 1.0 + (np.log(g) - np.log(opt)) ** 2 for g in grid}
            pts.append({"N": N, "D": D, "losses": losses})
    rule = ex.fit_lr_rule(pts, min_D=0)
    assert rule.b == pytest.approx(-0.3, abs=0.01) and rule.c == pytest.approx(-0.25, abs=0.01)
    assert rule.n_points == len(pts)
    assert ex.fit_lr_rule(pts, min_D=2**17).n_points == 8  # shorter runs left out
    flat = ex.fit_lr_rule(pts, in_D=False, min_D=0)
    assert flat.c == 0.0 and flat.b == pytest.approx(-0.3, abs=0.01)


def test_rehearsal_fits_only_the_cheap_points_and_scores_the_expensive_ones():
    law = ChinchillaFit(E=1.0, A=20.0, B=8.0, alpha=0.7, beta=0.35)
    pts = []
    for N in (200, 400, 900, 2000, 5000, 20000):
        for D in (2**12, 2**14, 2**16, 2**18, 2**20):
            C = 6.0 * N * D
            opt = np.exp(1.0 - 0.3 * np.log(N) - 0.25 * np.log(D))
            losses = {float(opt * f): float(law(N, D)) + 0.01 * np.log(f) ** 2 for f in (0.3, 1, 3)}
            pts.append(
                {"width": N, "N": N, "D": D, "C": C, "L": float(law(N, D)), "losses": losses}
            )
    reh = ex.rehearsal(pts, floor=1.0, factor=32.0)
    c_max = max(p["C"] for p in pts)
    assert reh["c_small"] == pytest.approx(c_max / 32)
    assert reh["targets"] and all(t["C"] > c_max / 2 for t in reh["targets"])
    for t in reh["targets"]:  # data from the law itself: the small fit predicts it exactly
        assert abs(t["err"]) < 0.02
        assert abs(t["lr_err"]["in N and D"]) < 0.05


# ------------------------------------------------------------------ the shipped records
def _shipped():
    import json
    from importlib.resources import files

    from scalinglab.engine.sweep_config import load_records

    folder = files("scalinglab") / "records"

    def cfg(name):
        return json.loads((folder / f"{name}.config.json").read_text())

    def rec(name):
        return load_records(folder / f"{name}.jsonl")

    return folder, cfg, rec


def test_sweep_records_are_the_configs_grid_each_point_its_own_cosine_run():
    _, cfg, rec = _shipped()
    config, records = cfg(ex.SWEEP), rec(ex.SWEEP)
    grid, batch = config["grid"], config["training"]["batch_size"]
    expected = {
        (w, n, lr)
        for w in grid["widths"]
        for n in grid["n_train"]
        for lr in grid["lrs"]
        if n * mlp_train_flops_per_example(24, w, grid["depth"], 16) <= grid["max_flops"]
    }
    finals = [r for r in records if r["final"]]
    assert {(r["width"], r["n_train"], r["lr"]) for r in finals} == expected
    assert len(finals) == len(expected)
    for r in finals:  # one epoch, its own schedule to its own end
        assert r["steps"] == r["n_train"] // batch and r["examples_seen"] == r["n_train"]
        assert r["schedule"] == "cosine" and r["warmup"] == max(1, round(0.05 * r["steps"]))
    pts = ex.tuned_points(records)
    Ns, Ds, Cs = (np.array([p[k] for p in pts], float) for k in ("N", "D", "C"))
    assert Ns.max() / Ns.min() > 30 and Ds.max() / Ds.min() >= 100  # the page's ranges
    assert Cs.max() / Cs.min() > 1000


def test_shipped_plan_is_reproduced_from_the_sweep_and_the_held_out_run_follows_it():
    folder, cfg, rec = _shipped()
    import json

    shipped = json.loads((folder / f"{ex.HELD_OUT}.plan.json").read_text())
    plan = ex.plan_held_out(rec(ex.SWEEP), cfg(ex.SWEEP))
    for k in ("E", "A", "B", "alpha", "beta"):
        assert plan.law[k] == pytest.approx(shipped["law"][k], rel=1e-6)
    assert plan.run == shipped["run"]
    assert plan.budget == pytest.approx(32 * plan.c_max) and plan.budget >= 30 * plan.c_max
    held_cfg = cfg(ex.HELD_OUT)
    assert held_cfg["grid"]["widths"] == [plan.run["width"]]
    assert held_cfg["grid"]["n_train"] == [plan.run["D"]]
    assert held_cfg["grid"]["lrs"] == [round(plan.lr["lr"], 6)]
    held = [r for r in rec(ex.HELD_OUT) if r["final"]]
    assert len(held) == 1 and held[0]["examples_seen"] == plan.run["D"]
    assert held[0]["flops"] == pytest.approx(plan.run["C"])


def test_seed_spread_and_the_pages_live_retrain():
    _, cfg, rec = _shipped()
    config = cfg(ex.SWEEP)
    _, pair = ex.floors(config)
    spread = ex.seed_spread(rec(ex.SEEDS), pair)
    assert set(spread) == {(16, 2**14), (16, 2**17), (64, 2**14), (64, 2**17)}
    for m, s in spread.values():
        assert 0 < s < 0.1 * m  # the page: a few percent of the reducible loss
    live = ex.retrain_point(config, width=16, n_train=2**14, lr=0.03, seed=1) - pair
    m, s = spread[(16, 2**14)]
    assert abs(live - m) < 3 * s  # within the seed spread (3 s.d. of 3 seeds)
    # and it is the shipped seed-1 run at that learning rate, up to float rounding
    shipped = next(
        r["test_loss"]
        for r in rec(ex.SEEDS)
        if r["final"] and (r["width"], r["n_train"], r["seed"], r["lr"]) == (16, 2**14, 1, 0.03)
    )
    assert live + pair == pytest.approx(shipped, abs=2e-3)


def test_the_pages_numbers_from_the_shipped_records():
    """Every number the page states about the sweep, the rehearsal, the prediction and the
    failures. The records are deterministic (regenerated byte for byte); the tolerances
    below are set by the seed spread of the reducible loss (``ch04_zipf_seeds``: 1 to 8 % of
    its value, i.e. about +-0.01 to +-0.08 in a log error), so each statement holds for a
    rerun with other seeds only where the text says "about" or gives an inequality, and
    the exact values are pinned tighter only to catch a silent change of the records."""
    folder, cfg, rec = _shipped()
    import json

    from scalinglab.fitting import log_reducible_error

    config = cfg(ex.SWEEP)
    exact, pair = ex.floors(config)
    assert exact == pytest.approx(0.9903, abs=5e-5) and pair == pytest.approx(0.9828, abs=5e-5)
    all_pts = [p for p in ex.tuned_points(rec(ex.SWEEP)) if p["seed"] == 0]
    pts = ex.well_tuned(all_pts)
    # "the best rate lies inside the grid at every point but one"
    assert [(p["width"], p["D"]) for p in all_pts if p not in pts] == [(4, 4096)]
    N, D, C = (np.array([p[k] for p in pts], float) for k in ("N", "D", "C"))
    assert N.max() / N.min() == pytest.approx(381.5, abs=0.1)  # "a factor 381", 2.6 decades
    assert D.max() / D.min() == 256  # 2.4 decades
    assert np.log10(C.max() / C.min()) == pytest.approx(3.1, abs=0.05)
    c_max = C.max()
    law = ex.fit_law(pts, c_max, pair)
    assert law.alpha == pytest.approx(0.709, abs=0.005)  # steeper than Michaud's 0.5
    assert law.beta == pytest.approx(0.364, abs=0.005)  # close to Michaud's 1/3
    a = law.beta / (law.alpha + law.beta)
    assert a == pytest.approx(0.34, abs=0.005)  # "approach 3: C^0.34", well below 1/2
    # Figure 5: the size term dominates over 12x in N, the data term over 64x in D
    red = np.array([p["L"] for p in pts]) - pair
    nt, dt = law.A * N**-law.alpha, law.B * D**-law.beta
    assert N[nt >= 0.5 * red].max() / N[nt >= 0.5 * red].min() == pytest.approx(11.9, abs=0.1)
    assert D[dt >= 0.5 * red].max() / D[dt >= 0.5 * red].min() == 64
    res = np.log(law(N, D) - pair) - np.log(red)
    worst = pts[int(np.argmax(np.abs(res)))]
    assert worst["width"] == 4 and worst["D"] <= 2**14  # "width 4 on its shortest runs"
    # the lr rule: the optimum falls with N and with D
    rule = ex.fit_lr_rule(pts)
    assert rule.b < 0 and rule.c < 0 and rule.n_points == 29
    w16 = next(p for p in pts if p["width"] == 16 and p["D"] == 2**20)["losses"]
    assert w16[0.03] == pytest.approx(1.13, abs=0.005) and w16[0.1] == pytest.approx(2.06, abs=0.01)
    # the rehearsal inside the fit set
    reh = ex.rehearsal(pts, pair)
    assert sum(p["C"] <= reh["c_small"] for p in pts) == 22
    assert reh["law"].beta == pytest.approx(0.51, abs=0.005)  # "a steeper beta (0.51)"
    errs = np.array([t["err"] for t in reh["targets"]])
    assert np.median(np.abs(errs)) == pytest.approx(0.22, abs=0.005)  # "missed by 0.22"
    assert np.median(np.abs(errs)) > 0.15  # the target missed in the rehearsal
    nd = np.array([t["lr_err"]["in N and D"] for t in reh["targets"]])
    n_only = np.array([t["lr_err"]["in N only"] for t in reh["targets"]])
    assert np.all(n_only > 0.6) and n_only.min() == pytest.approx(0.68, abs=0.01)
    assert n_only.max() == pytest.approx(1.17, abs=0.01)  # "e^0.7 to e^1.2"
    assert (nd > 0).any() and (nd < 0).any() and (np.abs(nd) < np.abs(n_only)).sum() == 3
    small = [p for p in pts if p["C"] <= reh["c_small"]]
    every = ex.fit_lr_rule(small, min_D=0)  # the rule fitted to all runs undershoots
    opt = np.array([t["lr_opt"] for t in reh["targets"]])
    under = opt / np.array([every(t["N"], t["D"]) for t in reh["targets"]])
    assert under.min() == pytest.approx(1.8, abs=0.05) and under.max() == pytest.approx(
        2.7, abs=0.05
    )
    rplan = json.loads((folder / f"{ex.REHEARSAL}.plan.json").read_text())
    assert rplan == json.loads(json.dumps(ex.plan_rehearsal(rec(ex.SWEEP), config)["plan"]))
    runs = {r["lr"]: r["test_loss"] for r in rec(ex.REHEARSAL) if r["final"]}
    e_nd = log_reducible_error(rplan["run"]["L_pred"], runs[rplan["lrs"]["in N and D"]], pair)
    e_n = log_reducible_error(rplan["run"]["L_pred"], runs[rplan["lrs"]["in N only"]], pair)
    assert np.exp(-e_nd) == pytest.approx(1.44, abs=0.05)  # "factors of 1.4 and 1.5"
    assert np.exp(-e_n) == pytest.approx(1.53, abs=0.05)
    assert runs[rplan["lrs"]["in N and D"]] < runs[rplan["lrs"]["in N only"]]
    # "the two rules' runs differ by only 0.006 nats" (so the rehearsal does not show the lr)
    gap = runs[rplan["lrs"]["in N only"]] - runs[rplan["lrs"]["in N and D"]]
    assert gap == pytest.approx(0.006, abs=0.0005)
    w64 = next(t for t in reh["targets"] if t["width"] == 64)
    assert np.exp(-w64["err"]) == pytest.approx(1.42, abs=0.05)  # "missed by 1.4 too"
    # the plan and the held-out run
    plan = json.loads((folder / f"{ex.HELD_OUT}.plan.json").read_text())
    held = next(r for r in rec(ex.HELD_OUT) if r["final"])
    preds = {
        "law": plan["baselines"]["Chinchilla law (approach 3)"],
        "copy": plan["baselines"]["no further gain"],
        "kaplan": plan["baselines"]["power law in C, no floor"],
    }
    err = ex.scores(preds, held["test_loss"], pair)
    # the measured outcome; the seed spread of a reducible loss this size is a few percent,
    # i.e. a few hundredths in these log errors, inside the statements below
    assert err["law"] == pytest.approx(-0.068, abs=0.005)  # "e^0.07 = 1.07", worse than predicted
    assert abs(err["law"]) <= 0.15  # the target met
    assert err["copy"] == pytest.approx(0.782, abs=0.005)  # "e^0.78 = 2.2"
    assert preds["kaplan"] < pair  # the floorless law predicts below the floor
    # "How we got here": the first attempt, its diagnostic, and the second attempt
    first = json.loads((folder / "ch04_zipf_heldout_first.plan.json").read_text())
    l_first = next(r for r in rec("ch04_zipf_heldout_first") if r["final"])
    assert l_first["lr"] == pytest.approx(0.00976, abs=1e-5) and l_first["width"] == 128
    e_first = log_reducible_error(first["run"]["L_pred"], l_first["test_loss"], pair)
    assert e_first == pytest.approx(-0.21, abs=0.005)  # missed the 0.15 target
    diag = {r["lr"]: r["test_loss"] for r in rec("ch04_zipf_heldout_lr") if r["final"]}
    assert sorted(diag) == [0.0049, 0.0195]  # half and twice the first attempt's rate
    e_half = log_reducible_error(first["run"]["L_pred"], diag[0.0049], pair)
    e_twice = log_reducible_error(first["run"]["L_pred"], diag[0.0195], pair)
    assert e_half == pytest.approx(-0.10, abs=0.005) and abs(e_half) < abs(e_first) / 2 + 0.01
    assert diag[0.0195] == pytest.approx(1.1106, abs=5e-5)
    assert e_twice == pytest.approx(-1.16, abs=0.005)  # "three times the prediction"
    assert diag[0.0195] - l_first["test_loss"] == pytest.approx(0.08, abs=0.005)
    assert abs(held["test_loss"] - diag[0.0049]) < 3e-4  # "within 0.0003 nats"
    assert plan["lr"]["lr"] == pytest.approx(0.00446, abs=1e-5) and held["width"] == 120
    assert held["test_loss"] - pair == pytest.approx(0.044, abs=5e-4)
    drift = ex.residual_drift(pts, law, 128)
    assert drift[0][1] == pytest.approx(0.08, abs=0.005) and abs(drift[-1][1]) < 0.005
    slope, icpt = np.polyfit(np.log([d for d, _ in drift]), [r for _, r in drift], 1)
    at_held = icpt + slope * np.log(plan["run"]["D"])
    assert -0.15 < at_held < err["law"] / 2  # "an error of the size and sign measured"
    cut = ex.fit_law([p for p in pts if p["width"] >= 8 and p["D"] >= 2**14], c_max, pair)
    flat = [r for d, r in ex.residual_drift(pts, cut, 128) if d >= 2**14]
    assert max(flat) - min(flat) < 0.015  # "flat" against the 0.08 drift
    # the failures, side by side, on the pre-registered 64x run (seed 0)
    plan64 = json.loads((folder / f"{ex.HELD_OUT64}.plan.json").read_text())
    held = next(r for r in rec(ex.HELD_OUT64) if r["final"] and r["seed"] == 0)
    err["law"] = float(ex.scores({"l": plan64["run"]["L_pred"]}, held["test_loss"], pair)["l"])
    fits = ex.variants(rec(ex.SWEEP), rec(ex.CONTROLS), pair)
    fe = {
        k: float(
            ex.scores({k: lw(held["n_params"], held["examples_seen"])}, held["test_loss"], pair)[k]
        )
        for k, (lw, _) in fits.items()
    }
    assert fe["as the papers do it"] == pytest.approx(err["law"], abs=1e-6)
    free = fits["floor fitted, not known"][0]
    assert free.E == pytest.approx(0.903, abs=0.001) and pair - free.E == pytest.approx(
        0.080, abs=0.001
    )
    assert fe["floor fitted, not known"] == -np.inf  # predicts below the floor
    # "twice the pre-registered run's whole reducible loss (0.038)"
    assert held["test_loss"] - pair == pytest.approx(0.038, abs=5e-4)
    assert (pair - free.E) / (held["test_loss"] - pair) == pytest.approx(2.1, abs=0.1)
    narrow = fits["narrow span of N"][1]
    assert max(p["N"] for p in narrow) / min(p["N"] for p in narrow) == pytest.approx(3.5, abs=0.05)
    for k in ("narrow span of N", "constant-lr checkpoints", "one lr for every width"):
        assert abs(fe[k]) < 0.15  # did not hurt this one prediction
        h32 = next(r for r in rec(ex.HELD_OUT) if r["final"])
        p32 = fits[k][0](h32["n_params"], h32["examples_seen"])
        e32 = ex.scores({k: p32}, h32["test_loss"], pair)[k]
        assert abs(e32) < 0.15  # nor the 32x one ("at either budget")
    # "errors of +0.07 and -0.07 at 64x" (test-set noise +-0.04, seeds +-0.016: about)
    assert fe["constant-lr checkpoints"] == pytest.approx(0.07, abs=0.01)
    assert fe["one lr for every width"] == pytest.approx(-0.07, abs=0.01)
    assert fits["constant-lr checkpoints"][0].beta == pytest.approx(0.33, abs=0.005)
    assert fits["one lr for every width"][0].beta == pytest.approx(0.35, abs=0.005)
    ck = {(p["width"], p["D"]): p["L"] - pair for p in fits["constant-lr checkpoints"][1]}
    own = {(p["width"], p["D"]): p["L"] - pair for p in pts}
    ratio = np.array([ck[k] / own[k] for k in ck if k in own and k[1] >= 2**13])
    assert ratio.mean() == pytest.approx(1.05, abs=0.005)  # "on average 5 % above"
    assert ratio.min() == pytest.approx(0.88, abs=0.005) and ratio.max() == pytest.approx(
        1.27, abs=0.005
    )
    big = [p for p in pts if p["width"] == 256]
    cost = np.mean([(p["losses"][0.03] - pair) / (p["L"] - pair) for p in big])
    assert cost == pytest.approx(1.22, abs=0.005)  # "costs the widest model 22 %"
    # approach 2 agrees with approach 3 within 5 % at the held-out budget
    from scalinglab.fitting import isoflop_profiles

    as_rec = [{"flops": p["C"], "test_loss": p["L"], "n_params": p["N"]} for p in pts]
    prof = [
        p
        for p in isoflop_profiles(as_rec, np.logspace(8, 10, 9))
        if 0 < np.argmin(p["L"]) < len(p["L"]) - 1
    ]
    coef = np.polyfit(np.log([p["budget"] for p in prof]), np.log([p["N_opt"] for p in prof]), 1)
    assert coef[0] == pytest.approx(0.32, abs=0.005)
    iso = np.exp(np.polyval(coef, np.log(plan64["budget"]))) / plan64["run"]["N"] - 1
    assert abs(iso) == pytest.approx(0.03, abs=0.005)  # "within 3 %" at the 64x budget


def test_repeated_data_and_inference_numbers_of_the_page():
    folder, cfg, rec = _shipped()
    exact, pair = ex.floors(cfg(ex.SWEEP))
    rep = sorted(rec(ex.REPEAT), key=lambda r: r["epochs"])
    rcfg = cfg(ex.REPEAT)["repeat"]
    pts = ex.well_tuned(p for p in ex.tuned_points(rec(ex.SWEEP)) if p["seed"] == 0)
    fresh = sorted((p for p in pts if p["width"] == rcfg["width"]), key=lambda p: p["D"])
    fD = [p["D"] for p in fresh]
    fL = [p["losses"][rcfg["lr"]] for p in fresh]
    d_eff = ex.effective_from_fresh([r["test_loss"] for r in rep], fD, fL)
    memorised = np.array([r["train_loss"] < exact for r in rep])
    assert list(memorised) == [False, False, False, False, True]  # 16 epochs memorise noise
    assert d_eff[1] / rcfg["unique"] == pytest.approx(1.86, abs=0.01)  # 2 epochs ~ fresh
    assert rep[-1]["test_loss"] > rep[-2]["test_loss"]  # and then the test loss rises
    R = np.array([r["epochs"] - 1 for r in rep], float)
    assert ex.fit_r_star(rcfg["unique"], R[~memorised], d_eff[~memorised]) == pytest.approx(
        2.66, abs=0.01
    )
    law = ex.fit_law(pts, None, pair)  # all points are <= C_max
    import json

    plan = json.loads((folder / f"{ex.HELD_OUT64}.plan.json").read_text())
    target = float(law(plan["run"]["N"], plan["run"]["D"]))
    n0, d0 = ex.inference_optimal(law, target, 0.0)
    n10, d10 = ex.inference_optimal(law, target, 10.0)
    assert n10 / n0 == pytest.approx(0.37, abs=0.01) and d10 / d0 == pytest.approx(8.0, abs=0.1)
    # GPT-3: 6ND in PF-days against Brown et al.'s 3,640 (Table D.1)
    from scalinglab.scaling_laws import PF_DAY

    assert 6 * 175e9 * 300e9 / PF_DAY == pytest.approx(3640, rel=0.01)


def test_no_run_comes_near_storing_all_facts():
    """The page: facts beyond rank 5,000 carry < 1 % of the probability, and the best run's
    reducible loss is that of an ideal store of fewer than 1,000 facts."""
    folder, cfg, rec = _shipped()
    config = cfg(ex.SWEEP)
    ds = config["dataset"]
    keys = ("n_facts", "n_bits", "n_classes", "zipf_exponent", "noise")
    src = ZipfLookup(**{k: ds[k] for k in keys}, seed=ds["source_seed"])
    assert src.probs[5000:].sum() < 0.01
    _, pair = ex.floors(config)
    best = min(
        r["test_loss"]
        for name in (ex.SWEEP, ex.HELD_OUT, ex.REHEARSAL)
        for r in rec(name)
        if r["final"]
    )
    assert best - pair > src.reducible_if_stored(1000)


def test_reducible_noise_log_matches_a_simulated_test_set():
    """The closed form against a Monte-Carlo test set: a model that knows the Bayes answer
    distribution on a fraction of the facts and answers the rest uniformly."""
    K, eps, n, f = 16, 0.2, 4096, 0.03
    q = np.full(K, eps / K)
    q[0] += 1 - eps
    rng = np.random.default_rng(0)
    y = rng.choice(K, size=(400, n), p=q)  # token 0 is the right answer
    unstored = rng.random((400, n)) < f
    d = np.where(unstored, np.log(K) + np.log(q[y]), 0.0)  # model loss minus Bayes loss
    r = d.mean(axis=1)
    expected_r = f * float(np.sum(q * (np.log(K) + np.log(q))))
    assert r.mean() == pytest.approx(expected_r, rel=0.02)
    # s.d. of log r over 400 simulated test sets vs the formula (within its 400-sample error)
    assert np.std(np.log(r), ddof=1) == pytest.approx(
        ex.reducible_noise_log(expected_r, n, K, eps), rel=0.1
    )


def test_the_64x_plan_is_what_the_frozen_recipe_gives_and_the_runs_follow_it():
    """The pre-registration is checkable: from the shipped sweep, the frozen recipe
    (known-floor fit, choose_run at 64 x C_max, the lr rule in N and D) gives exactly the
    committed plan, and the three trained runs are that plan."""
    folder, cfg, rec = _shipped()
    import json

    shipped = json.loads((folder / f"{ex.HELD_OUT64}.plan.json").read_text())
    config = cfg(ex.SWEEP)
    pts = ex.well_tuned(p for p in ex.tuned_points(rec(ex.SWEEP)) if p["seed"] == 0)
    c_max = max(p["C"] for p in pts)
    _, pair = ex.floors(config)
    law = ex.fit_law(pts, c_max, pair)
    run = ex.choose_run(law, 64 * c_max, *ex.mlp_dims(config), batch=128)
    assert shipped["run"] == run and shipped["c_max"] == c_max
    assert shipped["budget"] == pytest.approx(64 * c_max)
    rule = ex.fit_lr_rule(pts)  # the frozen rule: D >= 2^15 (256 steps), optimum inside the grid
    assert ex.LR_RULE_MIN_D == 2**15 and rule.n_points == 29
    assert shipped["lr"]["lr"] == pytest.approx(float(rule(run["N"], run["D"])), rel=1e-9)
    # the whole plan, baselines and bootstrap included, is reproduced by the shipped function
    again = ex.plan_held_out64(rec(ex.SWEEP), config)["plan"]
    assert again["run"] == shipped["run"] and again["seeds"] == shipped["seeds"] == [0, 1, 2]
    for k, v in shipped["baselines"].items():
        assert again["baselines"][k] == pytest.approx(v, rel=1e-9)
    for k in ("L_5", "L_50", "L_95"):
        assert again["bootstrap"][k] == pytest.approx(shipped["bootstrap"][k], rel=1e-9)
    held_cfg = cfg(ex.HELD_OUT64)
    assert held_cfg["grid"]["widths"] == [run["width"]]
    assert held_cfg["grid"]["n_train"] == [run["D"]] == [held_cfg["dataset"]["n_train"]]
    assert held_cfg["grid"]["lrs"] == [round(shipped["lr"]["lr"], 6)]
    assert held_cfg["grid"]["seeds"] == [0, 1, 2]
    held = [r for r in rec(ex.HELD_OUT64) if r["final"]]
    assert sorted(r["seed"] for r in held) == [0, 1, 2]
    for r in held:
        assert r["examples_seen"] == run["D"] and r["flops"] == pytest.approx(run["C"])
        assert r["n_params"] == run["N"] and r["lr"] == round(shipped["lr"]["lr"], 6)


def test_the_pre_registered_64x_numbers_of_the_page():
    """The 64x run as the page scores it. Tolerances: the printed values are pinned to their
    rounding (the records are deterministic); the statements about the outcome hold with
    the seed spread (s.d. of the reducible loss 1.6 %, about 0.016 in log) and the test-set
    noise (about 0.04 in log) as margins where the text words them as "about"."""
    folder, cfg, rec = _shipped()
    import json

    config = cfg(ex.SWEEP)
    _, pair = ex.floors(config)
    plan = json.loads((folder / f"{ex.HELD_OUT64}.plan.json").read_text())
    held = sorted((r for r in rec(ex.HELD_OUT64) if r["final"]), key=lambda r: r["seed"])
    pts = ex.well_tuned(p for p in ex.tuned_points(rec(ex.SWEEP)) if p["seed"] == 0)
    # the extrapolation: 69x in D beyond width 128's longest run, 10x in N beyond the
    # largest size-dominated point, size term a third of the predicted reducible loss
    assert plan["run"]["D"] / max(p["D"] for p in pts if p["width"] == 128) == pytest.approx(
        68.8, abs=0.1
    )
    law = ex.fit_law(pts, None, pair)
    n_size = max(p["N"] for p in pts if law.A * p["N"] ** -law.alpha >= 0.5 * (p["L"] - pair))
    assert plan["run"]["N"] / n_size == pytest.approx(10.2, abs=0.1)
    share = law.A * plan["run"]["N"] ** -law.alpha / (plan["run"]["L_pred"] - pair)
    assert share == pytest.approx(0.35, abs=0.01)  # "a third"
    # the cut of the lr rule moves the rate at this point "over a factor 2.4 (0.0026 to 0.0063)"
    at = [
        float(ex.fit_lr_rule(pts, min_D=m)(plan["run"]["N"], plan["run"]["D"])) for m in (0, 2**17)
    ]
    assert at[0] == pytest.approx(0.0026, abs=5e-5) and at[1] == pytest.approx(0.0063, abs=5e-5)
    assert at[1] / at[0] == pytest.approx(2.4, abs=0.05)
    # frontier: 20 points, 5 in the last decade of compute
    front = ex.frontier_points(pts)
    c_max = max(p["C"] for p in pts)
    assert len(front) == 20 and sum(p["C"] >= c_max / 10 for p in front) == 5
    errs = []
    for r in held:
        e = ex.scores({**plan["baselines"], "floor": pair}, r["test_loss"], pair)
        errs.append(e)
    e0 = errs[0]
    law_e = [e["Chinchilla law (approach 3)"] for e in errs]
    assert law_e[0] == pytest.approx(-0.076, abs=0.0005)  # "-0.08", e^0.08 = 1.08
    assert law_e[1] == pytest.approx(-0.105, abs=0.0005) and law_e[2] == pytest.approx(
        -0.101, abs=0.0005
    )
    assert all(abs(e) <= 0.15 for e in law_e)  # the 0.15 target, every seed
    last = "power law in C, known floor, last decade"
    assert e0[last] == pytest.approx(0.276, abs=0.0005)  # "e^0.28 = 1.3"
    assert e0["power law in C, known floor"] == pytest.approx(-0.343, abs=0.0005)
    assert e0["no further gain"] == pytest.approx(0.940, abs=0.0005)  # "e^0.94 = 2.6"
    assert plan["baselines"]["power law in C, no floor"] < pair  # below the floor
    ratios = []
    for e in errs:
        best = min(abs(v) for k, v in e.items() if k != "Chinchilla law (approach 3)")
        assert best == abs(e[last])  # the floored power law on the last 5 is the best baseline
        ratios.append(abs(e["Chinchilla law (approach 3)"]) / best)
    assert ratios[0] == pytest.approx(0.28, abs=0.005) and ratios[0] <= 1 / 3  # target met
    assert ratios[1] == pytest.approx(0.43, abs=0.005) and ratios[2] == pytest.approx(
        0.40, abs=0.005
    )
    red = np.array([r["test_loss"] - pair for r in held])
    assert red.std(ddof=1) / red.mean() == pytest.approx(0.016, abs=0.001)  # "1.6 %"
    bs = plan["bootstrap"]
    lo, mid, hi = (
        ex.scores({"l": bs[k]}, held[0]["test_loss"], pair)["l"] for k in ("L_5", "L_50", "L_95")
    )
    assert lo == pytest.approx(-0.27, abs=0.005) and abs(hi) < 0.005  # "-0.27 to 0.00"
    assert mid == pytest.approx(-0.10, abs=0.005) and lo < -0.15  # beyond the target
    assert mid < law_e[0] - 0.02  # "biased low: its median below the point estimate's -0.076"
    assert hi - lo == pytest.approx(0.27, abs=0.005)  # "read it as a width, 0.27"
    assert all(lo < e < hi for e in law_e)  # the measured errors sit inside
    noise = ex.reducible_noise_log(red[0], config["dataset"]["n_test"], 16, 0.2)
    assert noise == pytest.approx(0.04, abs=0.005)  # "about +-0.04"
    # the residual drift (a post hoc argument: not in the plan), continued in log D to the
    # 64x run's D: -0.11 for width 128, close to the measured errors; -0.16 for width 256
    extra = {}
    for w in (128, 256):
        drift = ex.residual_drift(pts, law, w)
        slope, icpt = np.polyfit(np.log([d for d, _ in drift]), [r for _, r in drift], 1)
        extra[w] = icpt + slope * np.log(plan["run"]["D"])
    assert extra[128] == pytest.approx(-0.106, abs=5e-4) and extra[256] == pytest.approx(
        -0.16, abs=5e-3
    )
    assert min(law_e) - 0.01 < extra[128] < max(law_e) + 0.04  # "close to the measured errors"
    # S-1: the 64x run against the 32x run that shaped the recipe
    h32 = next(r for r in rec(ex.HELD_OUT) if r["final"])
    assert plan["run"]["C"] / h32["flops"] == pytest.approx(2.0, abs=0.005)
    assert plan["run"]["D"] / h32["examples_seen"] == pytest.approx(1.60, abs=0.005)
    assert plan["run"]["N"] / h32["n_params"] == pytest.approx(1.25, abs=0.005)


# ------------------------------------------------------------------ review 3: B-1 and S-2
def _huber_line_reference(C, L, floor):
    """Independent fit of the GPT-4 form with the known floor: scipy's least_squares with its
    own Huber loss (``f_scale`` = the package's delta) on log(L - floor) = a - b log C.
    Returns ``(predict, objective)``: the prediction at C and the Huber objective at a
    parameter pair (scipy.special.huber), to compare minimisers where the loss is flat."""
    from scipy.special import huber

    from scalinglab.fitting import HUBER_DELTA

    x, y = np.log(np.asarray(C, float)), np.log(np.asarray(L, float) - floor)
    slope, icpt = np.polyfit(x, y, 1)
    res = optimize.least_squares(
        lambda th: th[0] - th[1] * x - y,
        [icpt, -slope],
        loss="huber",
        f_scale=HUBER_DELTA,
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )

    def objective(a, b):
        return float(huber(HUBER_DELTA, a - b * x - y).sum())

    return (lambda c: floor + np.exp(res.x[0] - res.x[1] * np.log(c))), objective, res.x


def _brute_frontier(points):
    """The compute frontier by brute force: the distinct points that no other point beats
    (at most their compute and loss, lower in one); a duplicate counts once."""
    distinct = {(p["C"], p["L"]): p for p in points}
    return sorted(
        (
            p
            for (c, loss), p in distinct.items()
            if not any(c2 <= c and l2 <= loss and (c2, l2) != (c, loss) for c2, l2 in distinct)
        ),
        key=lambda p: p["C"],
    )


def test_window_sweep_fits_the_last_k_frontier_points_as_scipy_does():
    """Synthetic sweep: a floored power law in C with noise, points off the frontier too."""
    rng = np.random.default_rng(4)
    pts = []
    for C in np.geomspace(1e6, 1e10, 24):
        for extra in (1.0, 1.3):  # a worse point at the same compute: never on the frontier
            L = 1.0 + extra * 5.0 * C**-0.2 * np.exp(rng.normal(0, 0.03))
            pts.append({"C": float(C), "L": float(L)})
    front = _brute_frontier(pts)
    assert [p["C"] for p in ex.frontier_points(pts)] == [p["C"] for p in front]
    sweep = ex.window_sweep(pts, 1.0, 1e11)
    assert sorted(sweep) == list(range(3, len(front) + 1))
    for k, pred in sweep.items():
        ref, objective, (a, b) = _huber_line_reference(
            [p["C"] for p in front[-k:]], [p["L"] for p in front[-k:]], 1.0
        )
        fit = ex.floored_power_law(pts, 1.0, last=k)
        # the package's fit reaches scipy's minimum of the same Huber objective
        a_pkg = np.log(fit(1.0) - 1.0)  # log A (C = 1)
        b_pkg = a_pkg - np.log(fit(np.e) - 1.0)
        assert objective(a_pkg, b_pkg) == pytest.approx(objective(a, b), rel=1e-6, abs=1e-12)
        if (
            abs(objective(a_pkg, b_pkg) - objective(a, b)) < 1e-12
            and abs(np.log((pred - 1) / (ref(1e11) - 1))) > 1e-3
        ):
            continue  # a flat minimum (the Huber loss is nearly L1): both are minimisers
        assert np.log((pred - 1) / (ref(1e11) - 1)) == pytest.approx(0, abs=1e-3)
    last5 = ex.floored_power_law(pts, 1.0, last=5)(1e11)
    assert sweep[5] == last5
    with pytest.raises(ValueError):
        ex.floored_power_law(pts, 1.0, last=1)
    with pytest.raises(ValueError):
        ex.floored_power_law(pts, 1.0, last=len(front) + 1)
    # the last-decade window is the points within a factor 10 of the largest compute
    n_dec = sum(p["C"] >= front[-1]["C"] / 10 * (1 - 1e-9) for p in front)
    assert ex.floored_power_law(pts, 1.0, last_decade=True)(1e11) == pytest.approx(
        ex.floored_power_law(pts, 1.0, last=n_dec)(1e11), rel=1e-9
    )


def test_errors_under_shift_move_every_error_together():
    e = {"law": -0.076, "base": 0.276}
    s = ex.errors_under_shift(e, 0.036)
    assert s == pytest.approx({"law": -0.112, "base": 0.240})
    # the same as scaling the measured reducible loss by e^delta
    pred, meas = 1.2, 1.1
    r = np.log((pred - 1) / (meas - 1))
    assert ex.errors_under_shift({"x": r}, 0.036)["x"] == pytest.approx(
        np.log((pred - 1) / ((meas - 1) * np.exp(0.036)))
    )


def test_the_baseline_window_table_and_its_bootstrap_of_the_page():
    """Review 3, B-1: the pre-registered baseline (GPT-4 form, known floor, the frontier's last
    decade: 5 points) against the same form on the last k frontier points, k = 3 to 20, at
    the 32x run and the 64x runs; checked against scipy's Huber fit on a brute-force
    frontier. The page's statements: k = 5 is the worst window from 3 to 18 points at both
    budgets; for 6 to 16 points the 64x miss is 0.03 to 0.09 (seed 0), below the law's for
    9 to 13; the median |error| over all windows about ties with the law's. Tolerances: the
    records are deterministic, so printed values are pinned to their rounding; the
    statements hold with margins larger than the seeds' spread (0.03 in log, 64x seeds)."""
    folder, cfg, rec = _shipped()
    import json

    _, pair = ex.floors(cfg(ex.SWEEP))
    pts = ex.well_tuned(p for p in ex.tuned_points(rec(ex.SWEEP)) if p["seed"] == 0)
    plan = json.loads((folder / f"{ex.HELD_OUT64}.plan.json").read_text())
    held64 = sorted((r for r in rec(ex.HELD_OUT64) if r["final"]), key=lambda r: r["seed"])
    held32 = next(r for r in rec(ex.HELD_OUT) if r["final"])
    front = _brute_frontier(pts)
    assert len(front) == 20
    w64, w32 = (
        ex.window_sweep(pts, pair, plan["run"]["C"]),
        ex.window_sweep(pts, pair, held32["flops"]),
    )
    assert sorted(w64) == list(range(3, 21))
    # the pre-registered baseline is the k = 5 window
    assert w64[5] == pytest.approx(plan["baselines"]["power law in C, known floor, last decade"])
    assert w64[20] == pytest.approx(plan["baselines"]["power law in C, known floor"])

    def err(pred, L):
        return float(np.log((pred - pair) / (L - pair)))

    flat = []
    for k in w64:  # each window against scipy on the brute-force frontier
        ref, objective, (a, b) = _huber_line_reference(
            [p["C"] for p in front[-k:]], [p["L"] for p in front[-k:]], pair
        )
        fit = ex.floored_power_law(pts, pair, last=k)
        a_pkg = np.log(fit(1.0) - pair)
        b_pkg = a_pkg - np.log(fit(np.e) - pair)
        assert objective(a_pkg, b_pkg) == pytest.approx(objective(a, b), rel=1e-9)
        d = abs(
            err(w64[k], held64[0]["test_loss"]) - err(ref(plan["run"]["C"]), held64[0]["test_loss"])
        )
        if d > 1e-3:  # the same Huber objective at another line: a flat minimum
            flat.append((k, round(err(ref(plan["run"]["C"]), held64[0]["test_loss"]), 2)))
        else:
            assert err(w32[k], held32["test_loss"]) == pytest.approx(
                err(ref(held32["flops"]), held32["test_loss"]), abs=1e-3
            )
    # the Huber loss with delta = 1e-3 is nearly L1: on an even split the line is not unique.
    # Where it is not (k = 4 and 7 here) the page gives scipy's minimiser too.
    assert flat == [(4, -0.13), (7, 0.07)]
    e32 = {k: err(v, held32["test_loss"]) for k, v in w32.items()}
    e64 = {k: [err(v, r["test_loss"]) for r in held64] for k, v in w64.items()}
    law64 = [err(plan["run"]["L_pred"], r["test_loss"]) for r in held64]
    assert e32[5] == pytest.approx(0.240, abs=5e-4) and e64[5][0] == pytest.approx(0.276, abs=5e-4)
    for e in (e32, {k: v[0] for k, v in e64.items()}):
        worst = max(range(3, 19), key=lambda k: abs(e[k]))
        assert worst == 5  # "the worst of the windows from 3 to 18 points, at both budgets"
    mid = [abs(e64[k][0]) for k in range(6, 17)]
    assert min(mid) == pytest.approx(0.031, abs=5e-4) and max(mid) == pytest.approx(0.089, abs=5e-4)
    for s in range(3):  # "better than the law's for 9 to 13 points", every seed
        assert all(abs(e64[k][s]) < abs(law64[s]) for k in range(9, 14))
    med = float(np.median([abs(v[0]) for v in e64.values()]))
    assert med == pytest.approx(0.084, abs=5e-4)  # "0.084 against the law's 0.076": a tie
    assert abs(med - abs(law64[0])) < 0.03  # within the seeds' spread of the law's error
    assert e64[20][0] == pytest.approx(-0.343, abs=5e-4)  # all 20 points (pre-registered too)
    # the bootstrap of the pre-registered baseline, on the resamples of the law's interval
    boot = ex.bootstrap_baseline(pts, pair, plan["run"]["C"])
    assert boot.shape == (200,) and not np.isnan(boot).any()
    eb = np.log((boot - pair) / (held64[0]["test_loss"] - pair))
    lo, mid_b, hi = np.percentile(eb, [5, 50, 95])
    assert lo == pytest.approx(-0.28, abs=0.005) and hi == pytest.approx(0.36, abs=0.005)
    fail = int(np.sum(np.abs(eb) < 3 * abs(law64[0])))
    assert fail == 133  # "in 133 of the 200 resamples (two in three) the 1/3 criterion fails"
    # independent: the first resamples redrawn with numpy and refitted by scipy
    rng = np.random.default_rng(0)
    for b in range(4):
        sample = [pts[i] for i in rng.integers(0, len(pts), len(pts))]
        fr = _brute_frontier(sample)
        fr = [p for p in fr if p["C"] >= fr[-1]["C"] / 10 * (1 - 1e-9)]
        ref, objective, (a, bb) = _huber_line_reference(
            [p["C"] for p in fr], [p["L"] for p in fr], pair
        )
        fit = ex.floored_power_law(sample, pair, last_decade=True)
        assert float(fit(plan["run"]["C"])) == pytest.approx(boot[b], rel=1e-12)
        a_pkg = np.log(fit(1.0) - pair)
        assert objective(a_pkg, a_pkg - np.log(fit(np.e) - pair)) == pytest.approx(
            objective(a, bb), rel=1e-9
        )
    # with least squares in place of the Huber loss, the same 5 points miss by +0.14 and the
    # law's error is 0.55 of that: the 1/3 criterion rests on the loss as well as the window
    x = np.log([p["C"] for p in front[-5:]])
    y = np.log([p["L"] - pair for p in front[-5:]])
    ols = pair + np.exp(np.polyval(np.polyfit(x, y, 1), np.log(plan["run"]["C"])))
    e_ols = err(ols, held64[0]["test_loss"])
    assert e_ols == pytest.approx(0.138, abs=5e-4) and abs(law64[0]) / e_ols == pytest.approx(
        0.55, abs=0.005
    )


def test_exact_losses_match_soft_label_cross_entropy_over_all_facts():
    """The exact expected loss of trained members against torch's cross-entropy with the
    answer distribution as soft targets, weighted by the facts' frequencies (no
    ZipfLookup.expected_loss), and against a large sample."""
    import torch.nn.functional as F

    from scalinglab.engine.ensemble import MLPEnsemble

    src = ZipfLookup(n_facts=300, n_bits=10, n_classes=8, zipf_exponent=1.5, noise=0.2, seed=5)
    ens = MLPEnsemble(10, [6, 12], 2, 8, [0, 1])
    got = ex.exact_losses(src, ens)
    x = torch.as_tensor(src.codes)
    soft = torch.full((300, 8), 0.2 / 8, dtype=torch.float64)
    soft[torch.arange(300), torch.as_tensor(src.targets)] += 0.8
    for m in range(2):
        with torch.no_grad():
            logits = ens.member(m)(x).double()
        per_fact = F.cross_entropy(logits, soft, reduction="none").numpy()
        assert got[m] == pytest.approx(float(src.probs @ per_fact), rel=1e-6)
        # a sampled test set of 400,000 questions agrees within 4 standard errors
        items, y = src.sample(400_000, np.random.default_rng(m))
        with torch.no_grad():
            ll = F.cross_entropy(logits[items], torch.as_tensor(y), reduction="none").numpy()
        assert abs(ll.mean() - got[m]) < 4 * ll.std() / np.sqrt(ll.size)
    assert (
        ex.zipf_source(
            {
                "dataset": {
                    "n_facts": 300,
                    "n_bits": 10,
                    "n_classes": 8,
                    "zipf_exponent": 1.5,
                    "noise": 0.2,
                    "source_seed": 5,
                }
            }
        ).targets.tolist()
        == src.targets.tolist()
    )


def test_remeasure_exact_retrains_the_same_models():
    """On a small config: the re-measurement's test losses are run_config's (the same models),
    and its exact losses are those of the trained ensemble (captured with on_trained)."""
    import copy
    import json
    from importlib.resources import files

    from scalinglab.engine.sweep import iter_sweep
    from scalinglab.engine.sweep_config import prepare_sweep

    cfg = json.loads((files("scalinglab") / "records" / f"{ex.HELD_OUT64}.config.json").read_text())
    cfg["dataset"].update(n_train=2048, n_facts=4096, n_test=2048)
    cfg["grid"].update(widths=[8], n_train=[2048], seeds=[0, 1])
    got = ex.remeasure_exact(cfg)
    grid, data, task, training = prepare_sweep(copy.deepcopy(cfg))
    captured = []
    ref = [
        r
        for r in iter_sweep(
            grid,
            data,
            task,
            device="cpu",
            progress=False,
            on_trained=lambda g, e: captured.append(copy.deepcopy(e)),
            **training,
        )
        if r["final"]
    ]
    assert [r["test_loss"] for r in got] == [r["test_loss"] for r in ref]
    src = ex.zipf_source(cfg)
    assert [r["exact_loss"] for r in got] == pytest.approx(ex.exact_losses(src, captured[0]))
    assert all(r["exact_floor"] == src.floor for r in got)
    assert all(r["exact_loss"] > src.floor for r in got)


def test_the_exact_remeasurement_of_the_64x_runs_on_the_page():
    """Review 3, S-2: the three pre-registered runs retrained (the same models: their sampled
    test losses are the shipped ones, bit for bit) and measured with the exact expected loss.
    The page: law's errors -0.079, -0.090, -0.085 on the exact reducible loss; 0.29, 0.34,
    0.32 of the pre-registered baseline's; the sampled and exact reducible losses differ by
    less than the test-set noise; seed s.d. 0.5 % of the exact reducible loss; the ratio under
    +-1 s.e. of test-set noise 0.13 to 0.47 (seed 0). Values pinned to their rounding (the
    records are deterministic)."""
    folder, cfg, rec = _shipped()
    import json

    config = cfg(ex.SWEEP)
    exact_floor, pair = ex.floors(config)
    plan = json.loads((folder / f"{ex.HELD_OUT64}.plan.json").read_text())
    c64, cx = cfg(ex.HELD_OUT64), cfg(ex.HELD_OUT64_EXACT)
    assert {k: v for k, v in cx.items() if k != "description"} == {
        k: v for k, v in c64.items() if k != "description"
    }  # the same runs: nothing re-chosen
    assert "python -m scalinglab.extrapolation exact64" in cx["description"]
    held = sorted((r for r in rec(ex.HELD_OUT64) if r["final"]), key=lambda r: r["seed"])
    exact = sorted(rec(ex.HELD_OUT64_EXACT), key=lambda r: r["seed"])
    assert [r["seed"] for r in exact] == [0, 1, 2]
    for r, h in zip(exact, held, strict=True):
        assert r["test_loss"] == h["test_loss"] and r["n_params"] == h["n_params"]
        assert r["exact_floor"] == pytest.approx(exact_floor, rel=1e-12)
    red_x = np.array([r["exact_loss"] - r["exact_floor"] for r in exact])
    red_s = np.array([r["test_loss"] - pair for r in held])
    noise = ex.reducible_noise_log(red_s[0], config["dataset"]["n_test"], 16, 0.2)
    assert noise == pytest.approx(0.036, abs=5e-4)
    assert np.all(np.abs(np.log(red_s / red_x)) < noise)  # within one s.e. of the formula
    assert red_x.std(ddof=1) / red_x.mean() == pytest.approx(0.005, abs=5e-4)  # "0.5 %"
    # "the sampled test set had moved them by at most 0.016"
    assert np.abs(np.log(red_s / red_x)).max() == pytest.approx(0.016, abs=5e-4)
    law = "Chinchilla law (approach 3)"
    base = "power law in C, known floor, last decade"
    e_law = [float(np.log((plan["baselines"][law] - pair) / r)) for r in red_x]
    e_base = [float(np.log((plan["baselines"][base] - pair) / r)) for r in red_x]
    assert e_law == pytest.approx([-0.079, -0.090, -0.085], abs=5e-4)
    assert e_base == pytest.approx([0.273, 0.263, 0.268], abs=5e-4)
    ratios = [abs(a) / abs(b) for a, b in zip(e_law, e_base, strict=True)]
    assert ratios == pytest.approx([0.29, 0.34, 0.32], abs=5e-3)
    # the other baselines stay worse on the exact loss too
    for k, v in plan["baselines"].items():
        if k not in (law, base) and v > pair:
            assert all(abs(np.log((v - pair) / r)) > abs(b) for r, b in zip(red_x, e_base))
    # the ratio under +-1 s.e. of test-set noise (every error moves by the same delta)
    rng_ratio = []
    for h in held:
        e = ex.scores(plan["baselines"], h["test_loss"], pair)
        for d in (-noise, noise):
            s = ex.errors_under_shift(e, d)
            best = min(abs(v) for k, v in s.items() if k != law)
            rng_ratio.append(abs(s[law]) / best)
    assert rng_ratio[0] == pytest.approx(0.13, abs=5e-3) and rng_ratio[1] == pytest.approx(
        0.47, abs=5e-3
    )
    assert max(rng_ratio) == pytest.approx(0.67, abs=5e-3)  # seed 1, +1 s.e.


def test_the_gpt4_form_with_its_floor_fitted():
    """Review 3, m6: GPT-4 fitted its floor. Fitted freely to the frontier (all 20 points,
    and the last 5), the form's floor lands far from the paired floor and its prediction of
    the 64x run fails (the page: c = 1.063, +0.80; c = 0.000, -1.13). Checked against
    scipy's Huber fit of the three-parameter form from several starts."""
    from scipy.special import huber

    from scalinglab.fitting import HUBER_DELTA

    folder, cfg, rec = _shipped()
    import json

    _, pair = ex.floors(cfg(ex.SWEEP))
    pts = ex.well_tuned(p for p in ex.tuned_points(rec(ex.SWEEP)) if p["seed"] == 0)
    plan = json.loads((folder / f"{ex.HELD_OUT64}.plan.json").read_text())
    L0 = next(r for r in rec(ex.HELD_OUT64) if r["final"] and r["seed"] == 0)["test_loss"]
    front = _brute_frontier(pts)
    got = {}
    for k in (20, 5):
        fit = ex.floored_power_law(pts, None, last=k)
        C = np.array([p["C"] for p in front[-k:]])
        L = np.array([p["L"] for p in front[-k:]])

        def objective(th, C=C, L=L):  # (log E, log A, a), as the package parametrises it
            return huber(
                HUBER_DELTA, np.log(np.exp(th[0]) + np.exp(th[1]) * C ** -th[2]) - np.log(L)
            ).sum()

        best = min(
            (
                optimize.minimize(
                    objective,
                    [np.log(e0), np.log(a0), a],
                    method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 40000},
                )
                for e0 in (1e-6, 0.5, 0.9)
                for a0, a in ((10.0, 0.1), (1e3, 0.4), (1.0, 0.02))
            ),
            key=lambda r: r.fun,
        )
        pkg = objective([np.log(max(fit.floor, 1e-300)), np.log(fit.A), fit.a])
        assert pkg <= best.fun * (1 + 1e-6) + 1e-12  # the package reaches scipy's best or better
        got[k] = (fit.floor, float(ex.scores({"l": fit(plan["run"]["C"])}, L0, pair)["l"]))
    assert got[20][0] == pytest.approx(1.063, abs=5e-4) and got[20][1] == pytest.approx(
        0.80, abs=5e-3
    )
    assert got[20][0] > L0  # a floor above the measured loss of the run it predicts
    assert got[5][0] < 5e-4 and got[5][1] == pytest.approx(-1.13, abs=5e-3)
    # with the known floor the same form is the pre-registered baseline
    known = ex.floored_power_law(pts, pair, last_decade=True)
    assert known.floor == pair
    assert float(known(plan["run"]["C"])) == pytest.approx(
        plan["baselines"]["power law in C, known floor, last decade"], rel=1e-12
    )


def test_fresh_source_config_and_protocol():
    """The clean test changes only the source and sampling seeds, and its protocol records
    the commit and the time."""
    import json
    import re
    from importlib.resources import files

    base = json.loads((files("scalinglab") / "records" / f"{ex.SWEEP}.config.json").read_text())
    cfg = ex.fresh_sweep_config(base)
    assert (cfg["dataset"]["source_seed"], cfg["dataset"]["seed"]) == (1, 1)
    assert (base["dataset"]["source_seed"], base["dataset"]["seed"]) == (0, 0)
    for k in ("grid", "training", "task", "model"):
        assert cfg[k] == base[k]
    same = {k: v for k, v in cfg["dataset"].items() if k not in ("source_seed", "seed")}
    assert same == {k: v for k, v in base["dataset"].items() if k not in ("source_seed", "seed")}
    assert "python -m scalinglab.extrapolation fresh" in cfg["description"]
    # another source: other codes and answers, the same frequencies and floor
    a, b = ex.zipf_source(base), ex.zipf_source(cfg)
    assert not np.array_equal(a.targets, b.targets) and a.floor == b.floor
    assert np.array_equal(a.probs, b.probs)
    proto = ex.fresh_protocol()
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", proto["recipe_commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", proto["written_at"])


def test_the_clean_test_on_a_fresh_source():
    """Review 3, S-1: the frozen recipe on a fresh source. The plan is what the recipe gives
    from the fresh sweep (baselines and bootstrap included), the runs follow it and carry
    the commit and time they started at, and the page's numbers. Printed values pinned to
    their rounding (deterministic records); the verdicts ("fails", "equals", "inside")
    hold with margins above the seeds' spread (about 0.01 in log here)."""
    folder, cfg, rec = _shipped()
    import json
    import re

    fcfg = cfg(ex.FRESH_SWEEP)
    assert fcfg == ex.fresh_sweep_config(cfg(ex.SWEEP))  # only the seeds changed
    exact_floor, pair = ex.floors(fcfg)
    assert pair == pytest.approx(0.9952, abs=5e-5) and pair > exact_floor
    proto = json.loads((folder / f"{ex.FRESH64}.protocol.json").read_text())
    plan = json.loads((folder / f"{ex.FRESH64}.plan.json").read_text())
    held = sorted(rec(ex.FRESH64), key=lambda r: r["seed"])
    # the order of the protocol, the plan and the runs, by the times written into them
    assert proto["written_at"] < plan["planned_at"] < held[0]["train_started_at"]
    for c in (proto["recipe_commit"], plan["recipe_commit"], held[0]["train_commit"]):
        assert re.fullmatch(r"[0-9a-f]{40}", c)
    again = ex.plan_held_out64(rec(ex.FRESH_SWEEP), fcfg)["plan"]
    assert again["run"] == plan["run"] and again["lr"]["lr"] == pytest.approx(plan["lr"]["lr"])
    for k, v in plan["baselines"].items():
        assert again["baselines"][k] == pytest.approx(v, rel=1e-9)
    for k in ("L_5", "L_50", "L_95"):
        assert again["bootstrap"][k] == pytest.approx(plan["bootstrap"][k], rel=1e-9)
    hc = cfg(ex.FRESH64)
    assert hc["grid"]["widths"] == [plan["run"]["width"]] and hc["grid"]["seeds"] == [0, 1, 2]
    assert hc["dataset"]["source_seed"] == 1 and hc["dataset"]["n_train"] == plan["run"]["D"]
    assert [r["seed"] for r in held] == [0, 1, 2]
    for r in held:
        assert r["examples_seen"] == plan["run"]["D"] and r["lr"] == round(plan["lr"]["lr"], 6)
    assert (plan["run"]["width"], plan["run"]["D"]) == (136, 4511488)  # "the same run"
    assert plan["law"]["alpha"] == pytest.approx(0.72, abs=0.005)
    assert plan["law"]["beta"] == pytest.approx(0.38, abs=0.005)
    assert plan["lr"]["lr"] == pytest.approx(0.0044, abs=5e-5)
    law, last = "Chinchilla law (approach 3)", "power law in C, known floor, last decade"
    e_law, ratios, e_x, r_x = [], [], [], []
    for r in held:
        e = ex.scores(plan["baselines"], r["test_loss"], pair)
        best = min(abs(v) for k, v in e.items() if k != law)
        assert best == abs(e[last])
        e_law.append(e[law])
        ratios.append(abs(e[law]) / best)
        red_x = r["exact_loss"] - r["exact_floor"]
        xl, xb = (np.log((plan["baselines"][k] - pair) / red_x) for k in (law, last))
        e_x.append(xl)
        r_x.append(abs(xl / xb))
    assert e_law == pytest.approx([-0.095, -0.083, -0.091], abs=5e-4)
    e0 = ex.scores(plan["baselines"], held[0]["test_loss"], pair)
    assert e0[last] == pytest.approx(-0.150, abs=5e-4)
    assert ratios == pytest.approx([0.64, 0.60, 0.63], abs=5e-3)
    assert min(ratios) > 1 / 3 + 0.2  # "fails", by more than the seeds move it
    assert all(abs(e) <= 0.15 for e in e_law)
    assert e_x == pytest.approx([-0.14, -0.13, -0.14], abs=5e-3)
    assert all(abs(e) <= 0.15 for e in e_x)  # "just inside 0.15"
    assert min(r_x) == pytest.approx(0.70, abs=5e-3) and max(r_x) == pytest.approx(0.72, abs=5e-3)
    pts = ex.well_tuned(p for p in ex.tuned_points(rec(ex.FRESH_SWEEP)) if p["seed"] == 0)
    assert len(pts) == 50
    front = _brute_frontier(pts)
    assert len(front) == 18 and sum(p["C"] >= front[-1]["C"] / 10 for p in front) == 7
    win = ex.window_sweep(pts, pair, plan["run"]["C"])
    assert sorted(win) == list(range(3, 19))
    med = float(
        np.median([abs(ex.scores({"l": v}, held[0]["test_loss"], pair)["l"]) for v in win.values()])
    )
    assert med == pytest.approx(0.094, abs=5e-4)
    assert abs(med - abs(e_law[0])) < 0.01  # "equals the law's"
    lo, hi = (
        ex.scores({"l": plan["bootstrap"][k]}, held[0]["test_loss"], pair)["l"]
        for k in ("L_5", "L_95")
    )
    assert lo == pytest.approx(-0.24, abs=5e-3) and hi == pytest.approx(-0.01, abs=5e-3)
    assert lo < e_law[0] < hi
    red_s = held[0]["test_loss"] - pair
    red_x0 = held[0]["exact_loss"] - held[0]["exact_floor"]
    noise = ex.reducible_noise_log(red_s, fcfg["dataset"]["n_test"], 16, 0.2)
    assert 1 - red_s / red_x0 == pytest.approx(0.05, abs=0.005)  # "5 % below the exact one"
    assert -np.log(red_s / red_x0) / noise == pytest.approx(1.3, abs=0.05)
