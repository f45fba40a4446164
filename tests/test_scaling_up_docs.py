"""The appendix "Scaling up the experiments" and the README's cluster section: their numbers,
their commands and the Kubernetes example."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scalinglab.cli import build_parser
from scalinglab.engine.shards import plan_shards
from scalinglab.engine.sweep import SweepGrid
from scalinglab.engine.sweep_config import prepare_sweep

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "book" / "scaling-up.md").read_text()
README = (ROOT / "README.md").read_text()
CH06 = ROOT / "src" / "scalinglab" / "records" / "ch06_mlp_sweep.config.json"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _commands(block: str) -> list[list[str]]:
    """The ``scalinglab ...`` commands of a shell block, continuation lines joined."""
    joined = block.replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)
        for line in joined.splitlines()
        if line.strip().startswith("scalinglab ")
    ]


def _sci(mantissa: float, exponent: int) -> str:
    """How the page writes 3.6 x 10^13: "3.6 × 10¹³"."""
    superscript = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"{mantissa:.1f} × 10{str(exponent).translate(superscript)}"


@pytest.fixture(scope="module")
def ch06():
    """Chapter 6's shipped config and what its sweep needs (the data set built once)."""
    config = json.loads(CH06.read_text())
    grid, dataset, task, training = prepare_sweep(config)
    return config, grid, dataset, task, training


def _plan(ch06, seeds, n_shards, **training):
    config, grid, dataset, task, shipped = ch06
    grid = SweepGrid(**{**config["grid"], "seeds": seeds})
    return plan_shards(grid, dataset, task, {**shipped, **training}, n_shards)


def test_page_numbers_are_the_plans(ch06):
    """Every number the page states about chapter 6's sweep, from the shard plan."""
    shipped = _plan(ch06, [0, 1, 2], 1)
    assert len(shipped.models()) == 60
    total = sum(g.flops for g in shipped.groups)
    assert _sci(total / 1e12, 12) == "5.3 × 10¹²" and "5.3 × 10¹² FLOPs" in PAGE

    seeds = list(range(30))
    default = _plan(ch06, seeds, 8)  # max_models_per_group 64
    total = sum(g.flops for g in default.groups)
    biggest = max(default.groups, key=lambda g: g.flops)
    assert {m[0] for m in biggest.models} == {256} and len(biggest.models) == 30
    assert round(100 * biggest.flops / total) == 40 and "40 % of the sweep's FLOPs" in PAGE
    assert max(default.flops(s) for s in range(8)) == biggest.flops  # one shard carries it

    small = _plan(ch06, seeds, 8, max_models_per_group=8)
    total = sum(g.flops for g in small.groups)
    assert len(small.models()) == 600 and "600 models" in PAGE
    assert f"{_sci(total / 1e13, 13)} FLOPs in all" in PAGE  # 3.6 x 10^13
    per_shard = [small.flops(s) for s in range(8)]
    assert {_sci(f / 1e12, 12) for f in per_shard} == {"4.5 × 10¹²"}
    assert "4.5 × 10¹²\nper shard" in PAGE
    assert {round(100 * f / total) for f in per_shard} <= {12, 13}
    assert "12 or 13 %" in PAGE
    # the floor: C / R seconds at R = 1e14 FLOP/s
    assert round(total / 1e14, 2) == 0.36 and "take 0.36 s" in PAGE


def test_bf16_precision_as_the_page_states_it():
    import torch

    # eps = 2^-(p-1) for p significant bits (the stored ones plus the implicit leading one)
    assert torch.finfo(torch.bfloat16).eps == 2.0**-7
    assert "rounded to 8 significant bits" in " ".join(PAGE.split())


def test_kubernetes_indexed_job_is_valid_and_runs_every_shard():
    (text,) = _blocks(PAGE, "yaml")
    job = yaml.safe_load(text)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    assert 1 <= spec["parallelism"] <= n and spec["backoffLimit"] >= 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")  # what a Job allows
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert {v["name"] for v in pod["volumes"]} == set(mounts)
    assert container["workingDir"] == mounts["runs"]
    shell, flag, script = container["command"]
    assert (shell, flag) == ("bash", "-c")
    outs = set()
    for index in range(n):  # what each pod runs, as its shell expands it
        words = shlex.split(script.replace("$JOB_COMPLETION_INDEX", str(index)))
        args = build_parser().parse_args(words[1:])
        assert (args.command, args.shard, args.resume) == ("sweep", (index, n), True)
        assert args.out.endswith(f"-of-{n}.jsonl")  # so that merge finds N in the names
        outs.add(args.out)
    assert len(outs) == n  # one file per shard
    # the merge command of the page reads the files the pods write
    (merge,) = [
        c for b in _blocks(PAGE, "bash") for c in _commands(b) if c[1:3] == ["sweep", "merge"]
    ]
    args = build_parser().parse_args(merge[1:])
    assert args.config == args.config and Path(args.files[0]).parent == Path(sorted(outs)[0]).parent


def test_every_command_of_the_page_and_the_readme_parses():
    blocks = _blocks(PAGE, "bash") + _blocks(_section(README, "Sweeps on a cluster"), "bash")
    commands = [c for b in blocks for c in _commands(b)]
    assert len(commands) >= 8
    for words in commands:
        build_parser().parse_args(words[1:])  # exits (fails the test) on a bad argument
    slurm = [c for c in commands if "--slurm" in c]
    assert slurm and all("--shards" in c and "--gpus-per-task" in c for c in slurm)


@pytest.mark.slow
def test_readme_cluster_commands_work_when_pasted(tmp_path, ch06):
    """Paste the README's first cluster block into bash (in a copy of the layout it needs),
    Slurm submission aside: the config it writes is valid and its status shows the plan
    the page describes. (tests/test_slurm.py runs the --slurm command itself on a real
    Slurm, with the same options.)"""
    (block, *_) = _blocks(_section(README, "Sweeps on a cluster"), "bash")
    (tmp_path / "src").symlink_to(ROOT / "src")
    lines = block.replace("\\\n", " ").splitlines()
    kept = [
        line
        for line in lines
        if not line.startswith((".venv/bin/pip", "source .venv")) and "--slurm" not in line
    ]
    assert len(kept) == len(lines) - 3  # the install, the activation, the submission
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(kept)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 1, run.stderr  # status: 0 of 8 shards done yet
    config = json.loads((tmp_path / "runs" / "ch06_x10.json").read_text())
    assert config["grid"]["seeds"] == list(range(30))
    last = run.stdout.splitlines()[-1]
    assert last == "0/8 shards done, 0/600 models; 3.60e+13 FLOPs in all (estimated)"
    assert "note" not in run.stderr  # groups of 8: no group dominates
