"""``scalinglab sweep --slurm`` on a real single-node Slurm cluster (tests/slurm_cluster.py).

Needs Debian's slurm-wlm and munge and root; elsewhere the test is skipped with the reason.
``SCALINGLAB_REQUIRE_SLURM=1`` (set by ``.ci/run``, which installs them) makes a skip a
failure, so CI cannot pass without running it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from slurm_cluster import SlurmCluster, missing

from scalinglab.cli import main
from scalinglab.engine.shards import plan_config_shards, shard_file, shard_status
from scalinglab.engine.sweep_config import load_config, run_config

REQUIRED = os.environ.get("SCALINGLAB_REQUIRE_SLURM") == "1"

# Four batched groups (widths 4, 100, 200, 300 fall in four width buckets), one per shard.
TINY = {
    "dataset": {"name": "digits", "seed": 0},
    "grid": {"widths": [4, 100, 200, 300], "n_train": [100], "steps": [5], "seeds": [0, 1]},
    "training": {"lr": 0.01, "batch_size": 20},
}


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node Slurm cluster; ``SLURM_CONF`` points at it during the test."""
    why = missing()
    if why is None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            why = "submitit is missing: pip install 'scalinglab[cluster]'"
    if why:
        if REQUIRED:
            pytest.fail(f"SCALINGLAB_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        if cluster.processes.get("slurmctld") and cluster.processes["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--user", "root"], env=cluster.env(), check=False)
        cluster.stop()


def _squeue(cluster, *args) -> list[str]:
    run = subprocess.run(
        ["squeue", "--noheader", *args], capture_output=True, text=True, env=cluster.env()
    )
    return run.stdout.split()


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_sweep_runs_as_a_slurm_job_array_and_resubmits_a_killed_task(
    slurm, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    local = tmp_path / "local.jsonl"
    run_config(load_config(config), local, device="cpu", progress=False)
    plan = plan_config_shards(load_config(config), 4)
    assert all(plan.models(s) for s in range(4))  # every task has work

    # The sweep as one array of 4 tasks, 2 at a time, submitted without waiting; the first
    # task seen running (python and torch take seconds to start) is cancelled.
    out = tmp_path / "runs" / "tiny.jsonl"
    argv = ["sweep", str(config), "--out", str(out), "--slurm", "--shards", "4"]
    common = ["--device", "cpu", "--no-progress", "--time", "5", "--partition", slurm.partition]
    assert main([*argv, *common, "--no-wait", "--max-parallel", "2"]) == 0, slurm.logs()
    err = capsys.readouterr().err
    assert "submitted Slurm job array" in err and "shards 0, 1, 2, 3 of 4, at most 2 at once" in err
    assert "not waiting" in err
    job = json.loads((out.parent / "tiny.shards" / "job.json").read_text())["job_id"]
    running = []
    _wait_until(
        lambda: (
            running.extend(_squeue(slurm, f"--jobs={job}", "--states=R", "--format=%i")) or running
        ),
        60,
        "a running task",
    )
    victim = running[0]  # "JOBID_TASK"; task k of the array is shard k here
    subprocess.run(["scancel", victim], env=slurm.env(), check=True)
    _wait_until(lambda: not _squeue(slurm, f"--jobs={job}"), 120, "the array to end")
    files = [shard_file(out, i, 4) for i in range(4)]
    unfinished = [s.shard for s in shard_status(plan, files) if not s.complete]
    killed = int(victim.split("_")[1])
    assert unfinished == [killed], (victim, unfinished, slurm.logs())
    assert not out.exists()
    assert main(["sweep", "status", str(config), *map(str, files)]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("3/4 shards done")

    # The same command again: only the killed shard is submitted, waited for, and merged.
    assert main([*argv, *common]) == 0, slurm.logs()
    captured = capsys.readouterr()
    assert f"shards {killed} of 4, at most 1 at once" in captured.err
    assert captured.out == f"wrote {len(local.read_text().splitlines())} records to {out}\n"
    # Bit for bit like the local run. The killed task wrote no record of its one group (a
    # group's records are written in well under a millisecond after seconds of training),
    # so the rerun trains that same group.
    assert out.read_bytes() == local.read_bytes()
