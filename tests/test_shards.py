"""Shards of a sweep: the partition, its cost model, and shard runs against an unsharded run."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.engine.ensemble import MLPEnsemble, train_ensemble
from scalinglab.engine.shards import (
    group_flops,
    longest_first,
    parse_shard,
    plan_config_shards,
    shard_file,
    shards_from_names,
)
from scalinglab.engine.sweep import model_id, plan_groups
from scalinglab.engine.sweep_config import load_config, prepare_sweep, run_config
from scalinglab.engine.training import logged_steps

# Six batched groups: n_train 100 and 300, each with the widths up to 64 together, 100 alone
# and 200 alone; two seeds. Seconds on one CPU thread.
TINY = {
    "dataset": {"name": "digits", "seed": 0},
    "grid": {"widths": [4, 8, 100, 200], "n_train": [100, 300], "steps": [5], "seeds": [0, 1]},
    "training": {"lr": 0.01, "batch_size": 20},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny config on disk and its unsharded records file (made once)."""
    folder = tmp_path_factory.mktemp("tiny")
    config = folder / "tiny.json"
    config.write_text(json.dumps(TINY))
    full = folder / "full.jsonl"
    run_config(load_config(config), full, device="cpu", progress=False)
    return config, full


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("4/4", "1/0", "-1/4", "1", "a/b", "1/2/3"):
        with pytest.raises(ValueError, match="I/N|shard"):
            parse_shard(bad)


def test_group_cost_is_what_flop_counter_mode_counts():
    """The cost model of a group (padded training plus evaluation at every logged step) is
    exactly the matmul FLOPs torch's FlopCounterMode counts for the batched training."""
    from torch.utils.flop_counter import FlopCounterMode

    rng = np.random.default_rng(0)
    x = rng.normal(size=(130, 7)).astype(np.float32)
    y = rng.integers(0, 3, 130)
    data = {"x_train": x[:100], "y_train": y[:100], "x_test": x[100:], "y_test": y[100:]}
    for widths, depth, batch_size in (([4, 9, 12], 2, 20), ([30], 1, None)):
        ens = MLPEnsemble(7, widths, depth, 3, list(range(len(widths))), "relu", "kaiming")
        with FlopCounterMode(display=False) as counter:
            train_ensemble(
                ens, data, steps=6, lr=0.01, batch_size=batch_size, log_at=[3], device="cpu"
            )
        n_logged = len(logged_steps(6, 100, [3]))
        expected = group_flops(widths, depth, 7, 3, 100, 30, 6, batch_size, n_logged)
        assert counter.get_total_flops() == expected


def _makespan(costs, shards, n):
    return max(sum(c for c, s in zip(costs, shards) if s == k) for k in range(n))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_shards", [2, 3, 4])
def test_longest_first_is_within_grahams_bound_of_the_best_partition(seed, n_shards):
    """Against the exact optimum (every assignment enumerated): LPT's makespan is at most
    (4/3 - 1/(3N)) of the best one (Graham 1969), every job is placed once."""
    rng = np.random.default_rng(seed)
    costs = [int(c) for c in rng.integers(1, 10**6, size=7)]
    shards = longest_first(costs, n_shards)
    assert len(shards) == len(costs) and set(shards) <= set(range(n_shards))
    best = min(_makespan(costs, a, n_shards) for a in itertools.product(range(n_shards), repeat=7))
    assert _makespan(costs, shards, n_shards) <= (4 / 3 - 1 / (3 * n_shards)) * best
    assert longest_first(costs, n_shards) == shards  # deterministic


def test_plan_keeps_groups_whole_and_balances_flops(tiny):
    config = load_config(tiny[0])
    grid, dataset, task, training = prepare_sweep(config)
    groups = plan_groups(grid, training["lr"], 0.0)
    for n in (1, 2, 4, 6, 9):
        plan = plan_config_shards(config, n)
        assert plan == plan_config_shards(config, n)  # the same on every call
        # every model in exactly one shard, every batched group inside one shard
        per_shard = [plan.models(s) for s in range(n)]
        assert sorted(sum(per_shard, [])) == sorted(plan.models())
        assert len(plan.models()) == len(grid)
        shard_of = plan.shard_of()
        for members in groups:
            ids = {model_id({**p, "depth": grid.depth}) for p in members}
            assert len({shard_of[m] for m in ids}) == 1
        assert sum(plan.flops(s) for s in range(n)) == sum(g.flops for g in plan.groups)
    # 6 groups in 9 shards: 3 shards are empty
    assert sum(not plan_config_shards(config, 9).models(s) for s in range(9)) == 3
    # the costliest shard of 2 is lighter than what splitting by model count would give
    plan = plan_config_shards(config, 2)
    costs = [g.flops for g in plan.groups]
    by_count = [0 if k < len(costs) // 2 else 1 for k in range(len(costs))]
    assert _makespan(costs, plan.shard_of_group, 2) < _makespan(costs, by_count, 2)


def test_shard_files_hold_exactly_the_unsharded_records(tiny, tmp_path, capsys):
    """Four shards, run through the command line in a scrambled order, write between them
    the very lines of the unsharded run (bit for bit on the CPU)."""
    config, full = tiny
    files = [shard_file(tmp_path / "sweep.jsonl", i, 4) for i in range(4)]
    for i in (3, 1, 0, 2):
        argv = ["sweep", str(config), "--out", str(files[i]), "--shard", f"{i}/4"]
        assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    lines = sorted(line for f in files for line in f.read_text().splitlines())
    assert lines == sorted(full.read_text().splitlines())
    assert shards_from_names(files) == 4
    plan = plan_config_shards(load_config(config), 4)
    for i, f in enumerate(files):  # each file holds its shard's models, no other
        ids = [model_id(json.loads(line)) for line in f.read_text().splitlines()]
        assert set(ids) == set(plan.models(i))


def test_bad_shard_argument_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["sweep", "x.json", "--out", str(tmp_path / "o.jsonl"), "--shard", "4/4"])
    assert info.value.code == 2
    assert "argument --shard: shard 4/4" in capsys.readouterr().err
