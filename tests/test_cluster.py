"""Shards as a job array (scalinglab.engine.cluster): submitit's local executor here; the
real Slurm cluster is in tests/test_slurm.py."""

from __future__ import annotations

import json

import pytest

from scalinglab.cli import main
from scalinglab.engine.shards import shard_file
from scalinglab.engine.sweep_config import load_config, run_config

pytest.importorskip("submitit", reason="submitit is missing: pip install 'scalinglab[cluster]'")

TINY = {
    "dataset": {"name": "digits", "seed": 0},
    "grid": {"widths": [4, 100], "n_train": [100], "steps": [5], "seeds": [0, 1]},
    "training": {"lr": 0.01, "batch_size": 20},
}


@pytest.fixture
def no_slurm(monkeypatch, tmp_path):
    """A PATH without sbatch and squeue (but with this Python)."""
    import sys
    from pathlib import Path

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))


@pytest.mark.slow
def test_without_slurm_the_shards_run_as_local_processes(no_slurm, tmp_path, capsys):
    from scalinglab.engine.cluster import SlurmOptions, run_sharded

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    full = tmp_path / "full.jsonl"
    run_config(load_config(config), full, device="cpu", progress=False)
    out = tmp_path / "runs" / "tiny.jsonl"
    argv = ["sweep", str(config), "--out", str(out), "--slurm", "--shards", "2"]
    assert main([*argv, "--device", "cpu", "--no-progress", "--max-parallel", "1"]) == 0
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line == (
        "scalinglab sweep: no Slurm on this machine (sbatch and squeue not found): running "
        "shards 0, 1 of 2 as local processes with submitit's local executor"
    )
    assert captured.out == f"wrote 8 records to {out}\n"
    assert out.read_bytes() == full.read_bytes()  # bit for bit, like an unsharded run

    # a partial failure: shard 1 lost its last model; only shard 1 runs again
    files = [shard_file(out, i, 2) for i in range(2)]
    records = [json.loads(line) for line in files[1].read_text().splitlines()]
    files[1].write_text("".join(json.dumps(r) + "\n" for r in records[:-1]))
    untouched = files[0].stat().st_mtime_ns
    out.unlink()
    said = []
    result = run_sharded(
        load_config(config), out, 2, SlurmOptions(), "cpu", progress=False, say=said.append
    )
    assert (result.backend, result.submitted, result.unfinished) == ("local", [1], [])
    assert "running shards 1 of 2" in said[0]
    assert files[0].stat().st_mtime_ns == untouched
    assert out.read_bytes() == full.read_bytes()
    # nothing left to do: no task at all, only the merge
    out.unlink()
    result = run_sharded(load_config(config), out, 2, progress=False, say=said.append)
    assert (result.backend, result.submitted, result.merged) == (None, [], 8)


def test_slurm_arguments_are_checked_in_one_line(no_slurm, tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "o.jsonl"
    base = ["sweep", str(config), "--out", str(out)]
    assert main([*base, "--slurm"]) == 2
    assert capsys.readouterr().err == "scalinglab sweep: error: --slurm needs --shards N\n"
    assert main([*base, "--shards", "2"]) == 2
    assert "--shards N goes with --slurm" in capsys.readouterr().err
    # local processes are watched by the command: --no-wait needs Slurm
    assert main([*base, "--slurm", "--shards", "2", "--no-wait"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Slurm here (sbatch and squeue not found)" in err
    assert not out.exists()
    with pytest.raises(SystemExit):  # one shard, or all of them on Slurm: not both
        main([*base, "--slurm", "--shards", "2", "--shard", "0/2"])
    out.write_text('{"old": 1}\n')
    assert main([*base, "--slurm", "--shards", "2"]) == 2
    assert "already holds records" in capsys.readouterr().err


def test_each_array_task_asks_slurm_for_its_own_gpus(tmp_path):
    """The sbatch script submitit writes for --gpus-per-task 1 (and the other options)."""
    from submitit.slurm.slurm import _make_sbatch_string

    from scalinglab.engine.cluster import SlurmOptions, _executor

    options = SlurmOptions(
        partition="gpu", gpus_per_task=1, cpus_per_task=4, time_min=30, max_parallel=2
    )
    executor = _executor("slurm", tmp_path, options)
    script = _make_sbatch_string(
        command="true", folder=tmp_path, map_count=5, **executor.parameters
    )
    flags = {line.split()[1] for line in script.splitlines() if line.startswith("#SBATCH")}
    expected = {
        "--array=0-4%2",
        "--gpus-per-task=1",
        "--cpus-per-task=4",
        "--partition=gpu",
        "--time=30",
        "--nodes=1",
        "--ntasks-per-node=1",
    }
    assert expected <= flags


def test_records_name_the_device_that_made_them(monkeypatch):
    import torch

    from scalinglab.engine.device import device_label

    assert device_label("cpu") == "cpu" and device_label(torch.device("mps")) == "mps"
    # a CUDA device is named by its model; under Slurm torch's cuda:0 is the task's own GPU
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert device_label("cuda") == "cuda:NVIDIA H100 80GB HBM3"


def test_without_submitit_the_command_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    argv = ["sweep", str(config), "--out", str(tmp_path / "o.jsonl"), "--slurm", "--shards", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'scalinglab[cluster]'" in err
