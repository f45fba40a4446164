"""Sweeps: grouping, tidy records, FLOPs, the command line and resuming."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from scalinglab.engine.flops import mlp_train_flops_per_example
from scalinglab.engine.sweep import (
    NEW_RECORD_KEYS,
    RECORD_KEYS,
    SweepGrid,
    final_records,
    plan_groups,
    run_sweep,
)
from scalinglab.engine.sweep_config import load_records
from scalinglab.engine.training import train_classifier
from scalinglab.models.mlp import MLP
from scalinglab.sweep_cli import CommandParser, register


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(260, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 1)
    return {"x_train": x[:200], "y_train": y[:200], "x_test": x[200:], "y_test": y[200:]}


@pytest.mark.slow
def test_records_are_tidy_and_match_single_model_training(data):
    grid = SweepGrid(widths=[3, 10, 100], n_train=[50, 200], steps=[10, 30], seeds=[0, 1])
    records = run_sweep(
        grid, data, lr=1e-2, batch_size=16, log_every=None, device="cpu", progress=False
    )
    steps_logged = [0, 10, 30]
    assert len(records) == len(grid) * len(steps_logged) == 12 * 3
    assert all(set(r) == {*RECORD_KEYS, *NEW_RECORD_KEYS} for r in records)
    assert {r["device"] for r in records} == {"cpu"}  # the device that made them
    final = final_records(records)
    assert len(final) == len(grid)
    assert {(r["width"], r["n_train"], r["seed"]) for r in final} == {
        (w, n, s) for w in (3, 10, 100) for n in (50, 200) for s in (0, 1)
    }
    out_dim = 4  # labels 0..3
    for r in records:
        assert r["n_params"] == MLP(5, r["width"], 1, out_dim).n_params
        assert r["batch_size"] == 16 and r["examples_seen"] == 16 * r["steps"]
        assert r["flops"] == r["examples_seen"] * mlp_train_flops_per_example(5, r["width"], 1, 4)
    # one model of the sweep, trained alone on the first n_train examples, gives its numbers
    r = next(r for r in final if (r["width"], r["n_train"], r["seed"]) == (10, 50, 1))
    subset = dict(data, x_train=data["x_train"][:50], y_train=data["y_train"][:50])
    ref = train_classifier(
        MLP(5, 10, 1, 4, seed=1),
        subset,
        steps=30,
        lr=1e-2,
        batch_size=16,
        log_every=None,
        log_at=[10],
        seed=1,
        device="cpu",
    )
    assert ref["step"] == steps_logged
    for key in ("train_loss", "test_loss", "train_error", "test_error"):
        assert r[key] == pytest.approx(ref[key][-1], rel=1e-4, abs=1e-6)


def test_sgd_with_momentum_reaches_the_ensemble(data):
    """``momentum`` travels from run_sweep (and so from a CLI config) to the optimizer: a
    swept model equals the same model trained alone with momentum SGD."""
    grid = SweepGrid(widths=[8], n_train=[200], steps=[20], seeds=[2])
    kwargs = dict(lr=0.05, optimizer="sgd", batch_size=20, device="cpu", progress=False)
    heavy = final_records(run_sweep(grid, data, momentum=0.9, **kwargs))[0]
    plain = final_records(run_sweep(grid, data, momentum=0.0, **kwargs))[0]
    assert heavy["train_loss"] != pytest.approx(plain["train_loss"], rel=1e-3)
    ref = train_classifier(
        MLP(5, 8, 1, 4, seed=2),
        data,
        steps=20,
        lr=0.05,
        optimizer="sgd",
        momentum=0.9,
        batch_size=20,
        log_every=None,
        seed=2,
        device="cpu",
    )
    assert heavy["train_loss"] == pytest.approx(ref["train_loss"][-1], rel=1e-4, abs=1e-6)


def test_full_batch_records_and_hyperparameter_axes(data):
    grid = SweepGrid(
        widths=[4], n_train=[100], steps=5, seeds=[0], lrs=[1e-3, 1e-2], weight_decays=[0, 0.1]
    )
    records = run_sweep(grid, data, progress=False, device="cpu")
    final = final_records(records)
    assert sorted((r["lr"], r["weight_decay"]) for r in final) == [
        (1e-3, 0.0),
        (1e-3, 0.1),
        (1e-2, 0.0),
        (1e-2, 0.1),
    ]
    assert all(r["batch_size"] == 100 and r["examples_seen"] == 500 for r in final)
    # distinct hyperparameters give distinct models
    assert len({r["train_loss"] for r in final}) == 4


def test_grouping_bounds_padding():
    grid = SweepGrid(widths=[1, 5, 64, 65, 128, 129, 1000], n_train=[10, 20], steps=1, seeds=[0, 1])
    groups = plan_groups(grid, lr=1e-3, weight_decay=0.0, max_models=3)
    assert sum(map(len, groups)) == len(grid)
    for g in groups:
        assert len({p["n_train"] for p in g}) == 1 and len(g) <= 3
        widths = [p["width"] for p in g]
        if max(widths) > 64:  # above the small-model bucket padding at most doubles a width
            assert max(widths) <= 2 * min(widths)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"widths": []},
        {"widths": [4, -2]},
        {"seeds": []},
        {"n_train": [0]},
        {"steps": [-1]},
        {"lrs": [0.0]},
        {"weight_decays": [-1.0]},
        {"depth": 0},
    ],
)
def test_bad_grids(kwargs):
    with pytest.raises(ValueError):
        SweepGrid(**{"widths": [4], "n_train": [10], "steps": 5, "seeds": [0], **kwargs})


def test_bad_sweep_arguments(data):
    grid = SweepGrid(widths=[4], n_train=[1000], steps=1)
    with pytest.raises(ValueError, match="exceeds"):
        run_sweep(grid, data, progress=False)
    grid = SweepGrid(widths=[4], n_train=[10], steps=1)
    with pytest.raises(ValueError, match="task"):
        run_sweep(grid, data, task="ranking", progress=False)
    with pytest.raises(ValueError, match="missing"):
        run_sweep(grid, {"x_train": data["x_train"]}, progress=False)


TINY = {
    "dataset": {"name": "digits", "seed": 0},
    "grid": {"widths": [4, 8], "n_train": [100], "steps": [5], "seeds": [0, 1]},
    "training": {"lr": 0.01, "batch_size": 20},
}


def _parser():
    parser = argparse.ArgumentParser(prog="scalinglab")
    register(parser.add_subparsers(parser_class=CommandParser))
    return parser


@pytest.mark.slow
def test_cli_writes_jsonl_and_resumes(tmp_path, capsys):
    config = {
        "dataset": {"name": "digits", "seed": 0},
        "task": "classification",
        "model": "mlp",
        "grid": {"widths": [4, 8], "n_train": [100], "steps": [5], "seeds": [0, 1]},
        "training": {"lr": 0.01, "batch_size": 20},
    }
    cfg = tmp_path / "sweep.json"
    cfg.write_text(json.dumps(config))
    out = tmp_path / "records.jsonl"
    args = _parser().parse_args(
        ["sweep", str(cfg), "--out", str(out), "--device", "cpu", "--no-progress"]
    )
    args.func(args)
    records = load_records(out)
    assert len(records) == 4 * 2  # 4 models x steps {0, 5}
    assert all(json.loads(line) for line in out.read_text().splitlines())

    # simulate an interrupted run: drop one model's final record and tear the last line
    kept = [r for r in records if not (r["width"] == 8 and r["seed"] == 1 and r["final"])]
    out.write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"model": "ml')
    assert len(load_records(out)) == len(kept)  # the torn line is skipped
    args = _parser().parse_args(
        ["sweep", str(cfg), "--out", str(out), "--device", "cpu", "--no-progress", "--resume"]
    )
    args.func(args)
    assert "wrote 2 records" in capsys.readouterr().out  # only the unfinished model is rerun
    resumed = load_records(out)
    assert len(resumed) == 8
    key = lambda r: (r["width"], r["seed"], r["steps"])  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, records))
    redo = next(r for r in resumed if key(r) == (8, 1, 5))
    orig = next(r for r in records if key(r) == (8, 1, 5))
    assert redo["test_loss"] == pytest.approx(
        orig["test_loss"], rel=1e-6
    )  # same seed, same numbers

    # --force starts over: the file holds one fresh run, nothing appended
    out.write_text(out.read_text() + '{"stale": true}\n')
    args = _parser().parse_args(
        ["sweep", str(cfg), "--out", str(out), "--device", "cpu", "--no-progress", "--force"]
    )
    assert args.func(args) == 0
    assert sorted(map(key, load_records(out))) == sorted(map(key, records))


def test_cli_rejects_a_bad_config_in_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"dataset": {"name": "digits"}, "grid": {}, "model": "rnn"}))
    out = tmp_path / "r.jsonl"
    args = _parser().parse_args(["sweep", str(cfg), "--out", str(out)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err == f"scalinglab sweep: error: {cfg}: model: expected one of 'mlp', got \"rnn\"\n"
    assert not out.exists()


def test_cli_refuses_to_overwrite_records(tmp_path, capsys):
    cfg = tmp_path / "sweep.json"
    cfg.write_text(json.dumps(TINY))
    out = tmp_path / "r.jsonl"
    out.write_text('{"old": 1}\n')
    args = _parser().parse_args(["sweep", str(cfg), "--out", str(out)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("scalinglab sweep: error: ") and err.count("\n") == 1
    assert "--resume" in err and "--force" in err
    assert out.read_text() == '{"old": 1}\n'
    with pytest.raises(SystemExit):  # argparse: not both
        _parser().parse_args(["sweep", str(cfg), "--out", str(out), "--resume", "--force"])


def test_regenerate_commands_replace_the_shipped_records():
    """The documented rebuild of a shipped file must not stop at "already holds records"."""
    import shlex

    from scalinglab.cli import build_parser
    from scalinglab.double_descent import regenerate_command

    for name in ("ch06_mlp_sweep", "ch06_mlp_sweep_clean", "ch06_mlp_samplewise"):
        args = build_parser().parse_args(shlex.split(regenerate_command(name))[2:])
        assert args.force and not args.resume


# 40 single-model groups (max_models_per_group=1): records reach the file one model at a time.
SLOW_TINY = {
    "dataset": {"name": "digits", "seed": 0},
    "grid": {"widths": [4, 8, 16, 32], "n_train": [200], "steps": [300], "seeds": list(range(10))},
    "training": {"lr": 0.01, "batch_size": 20, "max_models_per_group": 1},
}


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    cfg = tmp_path / "sweep.json"
    cfg.write_text(json.dumps(SLOW_TINY))
    out = tmp_path / "records.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "scalinglab.cli", "sweep", str(cfg), "--out", str(out)]
    proc = subprocess.Popen(
        cmd + ["--device", "cpu", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A shell without job control starts background jobs with SIGINT ignored, and
        # Python keeps it so: restore the default so the child sees Ctrl-C as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before Ctrl-C could be sent"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    (line,) = stderr.splitlines()
    n_on_disk = len(load_records(out))
    assert 0 < n_on_disk < 80  # 40 models x steps {0, 300}
    assert f"interrupted: {n_on_disk} records in {out}" in line
    command = line.split("resume with: ")[1]
    assert command == (f"scalinglab sweep {cfg} --out {out} --resume --device cpu --no-progress")
    # the hint works as printed
    resumed = subprocess.run(
        [sys.executable, "-m", "scalinglab.cli", *command.split()[1:]],
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    records = load_records(out)
    assert len(records) == 80
    assert len({(r["width"], r["seed"], r["steps"]) for r in records}) == 80


def test_markov_dataset_windows_are_one_hot_contexts_and_next_tokens():
    from scalinglab.data.markov import MarkovSource, markov_windows_dataset
    from scalinglab.engine.sweep_config import load_dataset

    spec = {
        "name": "markov",
        "vocab_size": 5,
        "order": 2,
        "concentration": 0.3,
        "source_seed": 0,
        "context_length": 3,
        "n_train": 200,
        "n_test": 70,
        "seed": 1,
    }
    data = load_dataset(spec)
    assert data["x_train"].shape == (200, 15) and data["x_test"].shape == (70, 15)
    assert np.all(data["x_train"].reshape(200, 3, 5).sum(-1) == 1)  # one token per slot
    # the same windows, rebuilt from a fresh sample of the same source and seed
    source = MarkovSource.random(5, order=2, concentration=0.3, seed=0)
    rng = np.random.default_rng(1)
    tokens = source.sample(200 // 64 + 1, 64 + 3, rng)
    first = tokens[0, :4]
    np.testing.assert_array_equal(data["x_train"][0].reshape(3, 5).argmax(-1), first[:3])
    assert data["y_train"][0] == first[3]
    again = markov_windows_dataset(source, 3, 200, 70, seed=1)
    np.testing.assert_array_equal(again["x_test"], data["x_test"])
