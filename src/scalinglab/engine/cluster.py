"""Run the shards of a sweep as one job array on Slurm, through submitit, then merge them.

:func:`run_sharded` is what ``scalinglab sweep CONFIG --out OUT --slurm --shards N`` does:

1. plan the N shards (:mod:`scalinglab.engine.shards`) and find those whose records file
   (``runs/x.shards/shard-I-of-N.jsonl`` for ``OUT = runs/x.jsonl``) lacks a model's final
   record;
2. submit one task per unfinished shard as **one Slurm job array** with at most
   ``max_parallel`` tasks running at once (``sbatch --array=0-K%P``, written by submitit);
   each task is :func:`run_shard`, which resumes its shard's file, so a task that was killed
   or timed out loses at most the group it was training;
3. wait, with a progress bar counting finished models, until no task is queued or running
   (``squeue``; ``sacct`` is not needed, so clusters without accounting work too), or return
   at once (``wait=False``);
4. if every shard is complete, merge them into ``OUT``; otherwise name the unfinished
   shards. Running the same command again submits only those.

Where ``sbatch`` is not found, the same shards run as local processes through submitit's
:class:`~submitit.LocalExecutor`, at most ``max_parallel`` at a time.

GPUs: with ``gpus_per_task=G`` each task asks Slurm for G GPUs; Slurm sets
``CUDA_VISIBLE_DEVICES`` to the ones it assigned, so the task's ``cuda`` device (picked by
:func:`~scalinglab.engine.device.get_device`) is its own GPU, used with bf16 autocast
(:func:`~scalinglab.engine.device.autocast`); each record names its device.

submitit is an optional dependency (``pip install scalinglab[cluster]``), imported only here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab.engine.shards import (
    merge_files,
    plan_config_shards,
    shard_file,
    shard_status,
)
from scalinglab.engine.sweep_config import OutputExistsError

__all__ = ["ClusterError", "SlurmOptions", "run_shard", "run_sharded", "slurm_missing"]


class ClusterError(RuntimeError):
    """A sharded run that cannot be submitted (the message says why, in one line)."""


@dataclass
class SlurmOptions:
    """What each array task asks for. ``time_min``: wall-clock limit of one task in minutes;
    ``max_parallel``: tasks running at once (``None``: all)."""

    partition: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    time_min: int = 60
    max_parallel: int | None = None
    job_name: str = "scalinglab-sweep"


@dataclass
class ShardedRun:
    """What :func:`run_sharded` did: the shards it submitted (``submitted``), how
    (``backend``: ``"slurm"`` or ``"local"``; ``job_id`` of the array), the shards still
    unfinished after waiting (``unfinished``) and the records merged into ``out`` (``merged``,
    ``None`` if not merged)."""

    out: Path
    n_shards: int
    backend: str | None = None
    job_id: str | None = None
    submitted: list[int] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    merged: int | None = None
    logs: Path | None = None


def slurm_missing() -> str | None:
    """Why Slurm cannot be used from here (``None`` if ``sbatch`` and ``squeue`` are found)."""
    absent = [c for c in ("sbatch", "squeue") if shutil.which(c) is None]
    return f"{' and '.join(absent)} not found" if absent else None


def run_shard(
    config: dict, out: str, shard: int, n_shards: int, device: str | None, threads: int
) -> int:
    """One array task: train shard ``shard`` of ``n_shards`` into ``out``, resuming it."""
    import torch

    from scalinglab.engine.sweep_config import run_config

    torch.set_num_threads(max(1, threads))  # the CPUs Slurm gave the task, no more
    return run_config(
        config, out, device=device, progress=False, resume=True, shard=(shard, n_shards)
    )


# --------------------------------------------------------------------------- bookkeeping
def shards_folder(out: Path) -> Path:
    return shard_file(out, 0, 1).parent


def _state_file(out: Path) -> Path:
    return shards_folder(out) / "job.json"


def _queued(job_id: str, tries: int = 10, pause_s: float = 3.0) -> bool:
    """Whether any task of Slurm job (array) ``job_id`` is still pending or running.

    A busy or restarting controller makes ``squeue`` fail for a while: it is asked again,
    ``tries`` times in all, before :class:`ClusterError` gives up."""
    for attempt in range(tries):
        run = subprocess.run(
            ["squeue", "--noheader", "--format=%i", f"--jobs={job_id}"],
            capture_output=True,
            text=True,
        )
        if run.returncode == 0:
            return bool(run.stdout.strip())
        if "invalid job id" in run.stderr.lower():  # slurmctld forgot it: long finished
            return False
        if attempt + 1 < tries:
            time.sleep(pause_s)
    raise ClusterError(f"squeue fails ({run.stderr.strip()}); is Slurm up?")


def _check_not_running(out: Path) -> None:
    state = _state_file(out)
    if not state.exists():
        return
    previous = json.loads(state.read_text())
    if previous.get("backend") == "slurm" and not slurm_missing() and _queued(previous["job_id"]):
        raise ClusterError(
            f"job array {previous['job_id']} of an earlier run still has tasks queued or "
            f"running; wait for it, or cancel it: scancel {previous['job_id']}"
        )


# --------------------------------------------------------------------------- executors
def _executor(backend: str, logs: Path, options: SlurmOptions):
    import submitit

    if backend == "slurm":
        executor = submitit.SlurmExecutor(folder=logs)
        params = {
            "job_name": options.job_name,
            "time": options.time_min,
            "cpus_per_task": options.cpus_per_task,
            "ntasks_per_node": 1,
            "nodes": 1,
        }
        if options.max_parallel:
            params["array_parallelism"] = options.max_parallel
        if options.partition:
            params["partition"] = options.partition
        if options.gpus_per_task:
            params["gpus_per_task"] = options.gpus_per_task
        executor.update_parameters(**params)
    else:
        executor = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(
            timeout_min=options.time_min,
            gpus_per_node=options.gpus_per_task,
            tasks_per_node=1,
            nodes=1,
        )
    return executor


def run_sharded(
    config: dict,
    out: str | os.PathLike,
    n_shards: int,
    options: SlurmOptions | None = None,
    device: str | None = None,
    wait: bool = True,
    force: bool = False,
    progress: bool = True,
    poll_s: float = 2.0,
    say: Callable[[str], None] = print,
) -> ShardedRun:
    """Run the sweep ``config`` as ``n_shards`` shards on Slurm (or local processes) and merge.

    ``say`` receives the one-line messages (submitted, not waiting, no Slurm here). See the
    module docstring for the steps. Raises :class:`~scalinglab.engine.sweep_config.
    OutputExistsError` if ``out`` holds records (unless ``force``, which also starts every
    shard over) and :class:`ClusterError` if an earlier array of this ``out`` still runs.
    """
    try:
        import submitit  # noqa: F401 -- fail before any work is done
    except ImportError:
        raise ClusterError(
            "submitit is not installed: pip install 'scalinglab[cluster]' (or pip install submitit)"
        ) from None
    options = options or SlurmOptions()
    out = Path(out)
    result = ShardedRun(out, n_shards)
    if out.exists() and out.stat().st_size > 0 and not force:
        raise OutputExistsError(f"{out} already holds records: overwrite it (--force)")
    _check_not_running(out)
    plan = plan_config_shards(config, n_shards)
    files = [shard_file(out, i, n_shards) for i in range(n_shards)]
    if force:
        for f in [out, *files]:
            f.unlink(missing_ok=True)
    todo = [s.shard for s in shard_status(plan, files) if not s.complete]
    if todo:
        why = slurm_missing()
        result.backend = "local" if why else "slurm"
        if why:
            if not wait:
                raise ClusterError(
                    f"no Slurm here ({why}): local processes need this command to wait; "
                    "drop --no-wait"
                )
            say(
                f"no Slurm on this machine ({why}): running shards {_names(todo)} of "
                f"{n_shards} as local processes with submitit's local executor"
            )
        result.logs = shards_folder(out) / "logs"
        result.logs.mkdir(parents=True, exist_ok=True)
        executor = _executor(result.backend, result.logs, options)
        task = (config, device, options.cpus_per_task, n_shards)
        if result.backend == "slurm":
            result.job_id = _submit_array(executor, task, todo, files)
            say(
                f"submitted Slurm job array {result.job_id}: shards {_names(todo)} of "
                f"{n_shards}, at most {options.max_parallel or len(todo)} at once "
                f"(logs: {result.logs})"
            )
            _state_file(out).write_text(
                json.dumps({"backend": "slurm", "job_id": result.job_id, "shards": todo})
            )
        result.submitted = todo
        if not wait:
            say(
                f"not waiting: run the same command again to merge when the array is done "
                f"(progress: scalinglab sweep status CONFIG {shards_folder(out)}/*.jsonl)"
            )
            result.unfinished = todo
            return result
        _wait(result, plan, files, todo, options, executor, task, progress, poll_s)
        result.unfinished = [s.shard for s in shard_status(plan, files) if not s.complete]
        if result.unfinished:
            return result
    result.merged = merge_files(config, out, files, n_shards, force=force)
    return result


def _names(shards: list[int]) -> str:
    return ", ".join(map(str, shards))


def _submit_array(executor, task, todo: list[int], files: list[Path]) -> str:
    config, device, threads, n = task
    with executor.batch():
        jobs = [
            executor.submit(run_shard, config, str(files[i]), i, n, device, threads) for i in todo
        ]
    return str(jobs[0].job_id).split("_")[0]


def _submit_local(executor, task, shard: int, files: list[Path]):
    """Start shard ``shard`` as a local process."""
    config, device, threads, n = task
    return executor.submit(run_shard, config, str(files[shard]), shard, n, device, threads)


def _wait(result, plan, files, todo, options, executor, task, progress, poll_s) -> None:
    """Poll until every submitted task has ended, showing finished models in a text bar.

    Local processes are started here, at most ``options.max_parallel`` at a time."""
    from tqdm import tqdm  # a text bar, never a Jupyter widget

    total = sum(len(plan.models(s)) for s in todo)
    before = sum(s.done for s in shard_status(plan, files) if s.shard in todo)
    bar = tqdm(total=total, initial=before, disable=not progress, desc="shards", unit="model")
    cap = options.max_parallel or len(todo)
    waiting, running = list(todo), []
    try:
        while True:
            done = sum(s.done for s in shard_status(plan, files) if s.shard in todo)
            bar.update(done - bar.n)
            if result.backend == "slurm":
                if not _queued(result.job_id):
                    break
            else:
                running = [job for job in running if not job.done()]
                while waiting and len(running) < cap:  # the cap: start one as one ends
                    running.append(_submit_local(executor, task, waiting.pop(0), files))
                if not running:
                    break
            time.sleep(poll_s)
        done = sum(s.done for s in shard_status(plan, files) if s.shard in todo)
        bar.update(done - bar.n)
    finally:
        bar.close()
        sys.stderr.flush()
