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


# --------------------------------------------------------------------------- merge and status
@pytest.fixture(scope="module")
def shards(tiny, tmp_path_factory):
    """The tiny sweep run as 4 shards (in a scrambled order): their files."""
    folder = tmp_path_factory.mktemp("shards")
    config = load_config(tiny[0])
    files = [shard_file(folder / "sweep.jsonl", i, 4) for i in range(4)]
    for i in (2, 0, 3, 1):
        run_config(config, files[i], device="cpu", progress=False, shard=(i, 4))
    return files


def test_merged_shards_equal_the_unsharded_run_bit_for_bit(tiny, shards, tmp_path, capsys):
    config, full = tiny
    out = tmp_path / "merged.jsonl"
    assert main(["sweep", "merge", str(config), str(out), *map(str, shards)]) == 0
    assert (
        capsys.readouterr().out == f"wrote {len(full.read_text().splitlines())} records to {out}\n"
    )
    assert out.read_bytes() == full.read_bytes()
    # the order of the files on the command line does not matter
    again = tmp_path / "again.jsonl"
    assert main(["sweep", "merge", str(config), str(again), *map(str, shards[::-1])]) == 0
    assert again.read_bytes() == full.read_bytes()
    # an existing OUT is kept unless --force
    assert main(["sweep", "merge", str(config), str(out), *map(str, shards)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["sweep", "merge", str(config), str(out), *map(str, shards), "--force"]) == 0


def _drop_final(path, dest, width):
    """A copy of a shard file without the final record of its first model of ``width``."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    victim = next(r for r in records if r["final"] and r["width"] == width)
    kept = [r for r in records if r is not victim]
    dest.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return victim


def test_merge_names_missing_duplicate_and_foreign_models(tiny, shards, tmp_path, capsys):
    config = str(tiny[0])
    plan = plan_config_shards(load_config(config), 4)
    out = tmp_path / "merged.jsonl"
    # a model without its final record: named, with its shard
    k = next(s for s in range(4) if any(m[0] == 200 for m in plan.models(s)))
    broken = tmp_path / "broken-of-4.jsonl"
    victim = _drop_final(shards[k], broken, 200)
    files = [str(broken if i == k else f) for i, f in enumerate(shards)]
    assert main(["sweep", "merge", config, str(out), *files]) == 1
    err = capsys.readouterr().err
    assert err.startswith("scalinglab sweep merge: not merged: 1 of 16 models have no final")
    assert (
        f"width=200 depth=1 n_train={victim['n_train']} seed={victim['seed']} lr=0.01 "
        f"weight_decay=0.0 (shard {k}/4)" in err
    )
    assert not out.exists()
    # a shard given twice: each of its models named with both files
    copy = tmp_path / "copy-of-4.jsonl"
    copy.write_text(shards[0].read_text())
    assert main(["sweep", "merge", config, str(out), *map(str, shards), str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"{len(plan.models(0))} models are finished more than once" in err
    assert f"(shard 0/4) in {shards[0]}, {copy}" in err
    # records of another grid
    other = tmp_path / "other-of-4.jsonl"
    record = json.loads(shards[0].read_text().splitlines()[0])
    other.write_text(json.dumps({**record, "width": 5}) + "\n")
    assert main(["sweep", "merge", config, str(out), *map(str, shards), str(other)]) == 1
    assert "1 records are of models not in this config's grid" in capsys.readouterr().err
    assert not out.exists()


def test_status_counts_finished_models_per_shard(tiny, shards, tmp_path, capsys):
    config = str(tiny[0])
    plan = plan_config_shards(load_config(config), 4)
    missing = [str(tmp_path / f"shard-{i}-of-4.jsonl") for i in (1, 3)]  # not started
    files = [str(shards[0]), str(shards[2]), *missing]
    assert main(["sweep", "status", config, *files]) == 1  # N = 4 from the names
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    for i in range(4):
        done = len(plan.models(i)) if i in (0, 2) else 0
        assert lines[1 + i].split()[:2] == [f"{i}/4", f"{done}/{len(plan.models(i))}"]
        assert lines[1 + i].endswith("done") == (i in (0, 2))
    n_done = len(plan.models(0)) + len(plan.models(2))
    flops = sum(g.flops for g in plan.groups)
    assert lines[-1] == f"2/4 shards done, {n_done}/16 models; {flops:.2e} FLOPs in all (estimated)"
    assert main(["sweep", "status", config, *map(str, shards)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("4/4 shards done, 16/16 models;")
    # --shards overrides the names: the same files seen as 2 shards
    main(["sweep", "status", config, *map(str, shards), "--shards", "2"])
    assert capsys.readouterr().out.splitlines()[-1].startswith("2/2 shards done, 16/16 models;")
    # no files: the plan before a run (every shard at 0), with --shards N
    assert main(["sweep", "status", config, "--shards", "3"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[1:4]] == [
        f"0/{len(plan_config_shards(load_config(config), 3).models(s))}" for s in range(3)
    ]
    assert main(["sweep", "status", config]) == 2
    assert "--shards N" in capsys.readouterr().err


def test_sweep_config_merge_and_status_share_the_command_name():
    from scalinglab.cli import build_parser
    from scalinglab.sweep_cli import _main, _merge, _status

    parse = build_parser().parse_args
    args = parse(["sweep", "c.json", "--out", "o.jsonl", "--shard", "1/3"])
    assert (args.func, args.config, args.shard) == (_main, "c.json", (1, 3))
    args = parse(["sweep", "merge", "c.json", "o.jsonl", "a.jsonl", "b.jsonl"])
    assert (args.func, args.config, args.out, args.files) == (
        _merge,
        "c.json",
        "o.jsonl",
        ["a.jsonl", "b.jsonl"],
    )
    args = parse(["sweep", "status", "c.json", "a.jsonl", "--shards", "4"])
    assert (args.func, args.files, args.shards) == (_status, ["a.jsonl"], 4)
    # a config file named like a command is reached by its path
    args = parse(["sweep", "./merge", "--out", "o.jsonl"])
    assert (args.func, args.config) == (_main, "./merge")
    with pytest.raises(SystemExit):  # merge needs at least one shard file
        parse(["sweep", "merge", "c.json", "o.jsonl"])


@pytest.mark.parametrize("command", ["merge", "status"])
def test_merge_and_status_help_is_light_and_plain(command):
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "scalinglab.cli", "sweep", command, "--help"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"usage: scalinglab sweep {command}")
    assert "example" in run.stdout and "``" not in run.stdout
    from scalinglab.cli import build_parser

    sweep = build_parser()._subparsers._group_actions[0].choices["sweep"]
    for action in sweep.commands[command]._actions:
        assert action.help, f"sweep {command}: {action.dest} has no help"
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    assert not {m for m in imported if m.split(".")[0] in ("torch", "numpy")}
