"""The ``scalinglab sweep`` sub-command: a thin argument parser over the engine.

``scalinglab sweep CONFIG --out OUT`` runs a sweep (:mod:`scalinglab.engine.sweep_config`),
or one shard of it (:mod:`scalinglab.engine.shards`); ``scalinglab sweep merge`` and
``scalinglab sweep status`` merge shard files and show their progress. The config format,
the checks, the sharding and the running live in the engine; this module only parses
arguments, prints one-line errors and the hint to resume.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence

from scalinglab.engine.sweep_config import (
    ConfigError,
    OutputExistsError,
    SweepInterrupted,
    load_config,
    run_config,
)

DESCRIPTION = """\
Train a grid of MLPs described by a JSON config and append one JSON record per model
per logged step to OUT (JSON lines), group by group, so an interrupted run keeps what it
finished. The config format is described in the scalinglab.engine.sweep_config module:
a "dataset" (mnist1d, digits, teacher_student, modular, markov or zipf_lookup and its arguments),
a "grid" (widths, n_train, steps, seeds, depth) and "training" (lr, optimizer, ...)."""

EPILOG = """\
examples:
  # rebuild a records file shipped with the package (one CPU thread, as it was made)
  OMP_NUM_THREADS=1 scalinglab sweep src/scalinglab/records/ch06_mlp_sweep.config.json \\
      --out src/scalinglab/records/ch06_mlp_sweep.jsonl --device cpu

  # continue a run stopped with Ctrl-C: finished models are skipped
  scalinglab sweep my_sweep.json --out runs/my_sweep.jsonl --resume

  # start over, replacing the records already in the file
  scalinglab sweep my_sweep.json --out runs/my_sweep.jsonl --force

  # all of it as 4 shards in one Slurm job array, one GPU each; merged into OUT at the end
  scalinglab sweep my_sweep.json --out runs/my_sweep.jsonl --slurm --shards 4 --gpus-per-task 1

  # shard 2 of 4 (counted from 0), e.g. one task of an array job; merge the four files after
  scalinglab sweep my_sweep.json --out runs/my_sweep.shards/shard-2-of-4.jsonl --shard 2/4

exit status: 0 done, 1 shards left unfinished (--slurm), 2 bad arguments or config,
130 interrupted (Ctrl-C).

To merge shard files or see how far they are (a config file named "merge" or "status"
is written ./merge):
  scalinglab sweep merge CONFIG OUT SHARD_FILE...
  scalinglab sweep status CONFIG SHARD_FILE..."""

MERGE_DESCRIPTION = """\
Check that the shard files of a sweep hold the final record of every model of CONFIG's grid
exactly once, then write their records to OUT in the order of an unsharded run. On a
problem, name every missing model and its shard, every model finished in more than one file
and every record that is not of this grid, and write nothing."""

MERGE_EPILOG = """\
example:
  scalinglab sweep merge my_sweep.json runs/my_sweep.jsonl runs/my_sweep.shards/*.jsonl

exit status: 0 merged, 1 records missing or duplicated, 2 bad arguments or config."""

STATUS_DESCRIPTION = """\
Show, for each shard of CONFIG's sweep, how many of its models have their final record in
the given files (files that do not exist yet count as empty), and its estimated FLOPs.
Without files (and with --shards N), the plan and what it costs, before anything runs."""

STATUS_EPILOG = """\
examples:
  scalinglab sweep status my_sweep.json runs/my_sweep.shards/*.jsonl --shards 4
  scalinglab sweep status my_sweep.json --shards 8     # the plan and its FLOPs

exit status: 0 every shard done, 1 some not done, 2 bad arguments or config."""

SHARDS_HELP = (
    "the N of the shards (default: the N in file names ending in -of-N.jsonl, "
    "else the number of files)"
)


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose first argument may name a sub-command of its own.

    ``scalinglab sweep CONFIG`` takes a file name where ``scalinglab sweep merge`` takes a
    sub-command, and argparse cannot put a positional argument and sub-commands in one
    parser: when the first argument is a name given to :meth:`add_command`, the remaining
    arguments go to that command's parser; otherwise this parser parses them as usual.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def add_command(self, name: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", self.formatter_class)
        self.commands[name] = argparse.ArgumentParser(prog=f"{self.prog} {name}", **kwargs)
        return self.commands[name]

    def parse_known_args(self, args=None, namespace=None):
        if args and args[0] in self.commands:
            return self.commands[args[0]].parse_known_args(args[1:], namespace)
        return super().parse_known_args(args, namespace)


def _shard(text: str) -> tuple[int, int]:
    from scalinglab.engine.shards import parse_shard  # imported only when --shard is given

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _error(args: argparse.Namespace, message: str) -> int:
    print(f"{args.prog}: error: {message}", file=sys.stderr)
    return 2


def resume_command(args: argparse.Namespace) -> str:
    """The shell command that continues the sweep ``args`` describes."""
    words = ["scalinglab", "sweep", args.config, "--out", str(args.out), "--resume"]
    if args.shard:
        words += ["--shard", "/".join(map(str, args.shard))]
    if args.device:
        words += ["--device", args.device]
    if args.no_progress:
        words.append("--no-progress")
    return shlex.join(words)


def _cluster(args: argparse.Namespace) -> int:
    """``--slurm``: the shards as one job array (or local processes), then the merge."""
    from scalinglab.engine.cluster import ClusterError, SlurmOptions, run_sharded
    from scalinglab.engine.shards import MergeError

    if args.shards is None:
        return _error(args, "--slurm needs --shards N")
    options = SlurmOptions(
        partition=args.partition,
        gpus_per_task=args.gpus_per_task,
        cpus_per_task=args.cpus_per_task,
        time_min=args.time,
        max_parallel=args.max_parallel,
    )
    try:
        result = run_sharded(
            load_config(args.config),
            args.out,
            args.shards,
            options,
            device=args.device,
            wait=not args.no_wait,
            force=args.force,
            progress=not args.no_progress,
            say=lambda line: print(f"{args.prog}: {line}", file=sys.stderr),
        )
    except (ConfigError, OutputExistsError, ClusterError) as exc:
        return _error(args, str(exc))
    except MergeError as exc:  # shards complete yet not the grid: files edited by hand?
        print(f"{args.prog}: not merged: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"{args.prog}: interrupted: an array already submitted to Slurm keeps running "
            "(squeue shows it), local shard processes stop; run the same command again to "
            "continue and merge",
            file=sys.stderr,
        )
        return 130
    if args.no_wait and result.merged is None:
        return 0
    if result.unfinished:
        print(
            f"{args.prog}: shards {', '.join(map(str, result.unfinished))} of {args.shards} "
            f"not finished (logs: {result.logs}); run the same command again to resubmit "
            "only them",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {result.merged} records to {args.out}")
    return 0


def _main(args: argparse.Namespace) -> int:
    if args.slurm:
        return _cluster(args)
    if args.shards is not None:
        return _error(args, "--shards N goes with --slurm (one shard: --shard I/N)")
    try:
        config = load_config(args.config)
        n = run_config(
            config,
            args.out,
            device=args.device,
            progress=not args.no_progress,
            resume=args.resume,
            force=args.force,
            shard=args.shard,
        )
    except (ConfigError, OutputExistsError) as exc:
        return _error(args, str(exc))
    except SweepInterrupted as exc:
        print(
            f"{args.prog}: interrupted: {exc.total} records in {exc.out} "
            f"({exc.written} written by this run); resume with: {resume_command(args)}",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print(f"{args.prog}: interrupted before this run wrote any record", file=sys.stderr)
        return 130
    print(f"wrote {n} records to {args.out}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from scalinglab.engine.shards import MergeError, merge_files
    from scalinglab.engine.sweep_config import ConfigError, OutputExistsError, load_config

    try:
        n = merge_files(load_config(args.config), args.out, args.files, args.shards, args.force)
    except (ConfigError, OutputExistsError) as exc:
        return _error(args, str(exc))
    except MergeError as exc:
        print(f"{args.prog}: not merged: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {n} records to {args.out}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from scalinglab.engine.shards import n_shards_of, plan_config_shards, shard_status
    from scalinglab.engine.sweep_config import ConfigError, load_config

    if not args.files and args.shards is None:
        return _error(args, "give the shard files, or --shards N to see the plan before a run")
    try:
        plan = plan_config_shards(load_config(args.config), n_shards_of(args.files, args.shards))
    except ConfigError as exc:
        return _error(args, str(exc))
    rows = shard_status(plan, args.files)
    flops = sum(r.flops for r in rows)
    total = flops or 1
    print(f"{'shard':>7}  {'models done':>11}  {'est. FLOPs':>10}  share")
    for r in rows:
        mark = "done" if r.complete else ""
        print(
            f"{r.shard:>3}/{plan.n_shards:<3}  {f'{r.done}/{r.total}':>11}  "
            f"{r.flops:>10.2e}  {r.flops / total:5.0%}  {mark}".rstrip()
        )
    done, models = sum(r.done for r in rows), sum(r.total for r in rows)
    finished = sum(r.complete for r in rows)
    biggest = max(g.flops for g in plan.groups)
    if biggest > 1.5 * total / len(rows):  # more shards cannot help: a group is indivisible
        print(
            f"{args.prog}: note: the costliest batched group is {biggest / total:.0%} of the "
            f"sweep and a shard holds whole groups; to spread it over more shards, lower "
            '"max_models_per_group" in the config\'s "training" (default 64)',
            file=sys.stderr,
        )
    print(
        f"{finished}/{len(rows)} shards done, {done}/{models} models; "
        f"{flops:.2e} FLOPs in all (estimated)"
    )
    return 0 if finished == len(rows) else 1


def _register_merge_and_status(parser: CommandParser) -> None:
    merge = parser.add_command("merge", description=MERGE_DESCRIPTION, epilog=MERGE_EPILOG)
    merge.add_argument("config", metavar="CONFIG", help="the JSON config the shards ran")
    merge.add_argument("out", metavar="OUT.jsonl", help="the merged records file to write")
    merge.add_argument("files", nargs="+", metavar="SHARD_FILE", help="a shard's records file")
    merge.add_argument("--shards", type=int, metavar="N", help=SHARDS_HELP)
    merge.add_argument("--force", action="store_true", help="overwrite OUT if it holds records")
    merge.set_defaults(func=_merge, prog=merge.prog)

    status = parser.add_command("status", description=STATUS_DESCRIPTION, epilog=STATUS_EPILOG)
    status.add_argument("config", metavar="CONFIG", help="the JSON config the shards ran")
    status.add_argument(
        "files",
        nargs="*",
        metavar="SHARD_FILE",
        help="a shard's records file (none, with --shards N: the plan and its cost before a run)",
    )
    status.add_argument("--shards", type=int, metavar="N", help=SHARDS_HELP)
    status.set_defaults(func=_status, prog=status.prog)


def register(subparsers, formatter_class=argparse.HelpFormatter) -> argparse.ArgumentParser:
    """Add the ``sweep`` sub-command (with ``sweep merge`` and ``sweep status``) to an
    ``argparse`` subparsers object made with ``parser_class=CommandParser``."""
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of MLPs from a JSON config, write JSON-lines records",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=formatter_class,
    )
    if not isinstance(parser, CommandParser):
        raise TypeError("make the subparsers with add_subparsers(parser_class=CommandParser)")
    parser.add_argument(
        "config", help="JSON config file with the sections dataset, grid and training"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="OUT.jsonl",
        help="records file, one JSON record per line (its folder is created)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or mps (default: the best available; "
        "the shipped records were made with cpu)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT: skip the models whose final record is already there",
    )
    mode.add_argument(
        "--force", action="store_true", help="overwrite OUT if it already holds records"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--shard",
        type=_shard,
        metavar="I/N",
        help="train only shard I of N (I counted from 0): whole batched groups, balanced by "
        "estimated FLOPs, the same on every machine; merge the N files with 'scalinglab sweep "
        "merge'",
    )
    where.add_argument(
        "--slurm",
        action="store_true",
        help="run the sweep as --shards N shards in one Slurm job array (submitit; pip install "
        "'scalinglab[cluster]'), wait and merge them into OUT; without Slurm, as local "
        "processes. Run it again after a failure: only unfinished shards are resubmitted",
    )
    cluster = parser.add_argument_group("with --slurm")
    cluster.add_argument("--shards", type=_positive, metavar="N", help="number of shards")
    cluster.add_argument(
        "--partition", metavar="P", help="Slurm partition (default: the cluster's)"
    )
    cluster.add_argument(
        "--gpus-per-task", type=int, default=0, metavar="G", help="GPUs for each shard's task"
    )
    cluster.add_argument(
        "--cpus-per-task", type=_positive, default=1, metavar="C", help="CPU cores per task"
    )
    cluster.add_argument(
        "--time", type=_positive, default=60, metavar="MINUTES", help="time limit of one task"
    )
    cluster.add_argument(
        "--max-parallel",
        type=_positive,
        metavar="K",
        help="tasks running at once (default: all of them)",
    )
    cluster.add_argument(
        "--no-wait",
        action="store_true",
        help="submit and return; run the same command again to merge when the array is done",
    )
    parser.set_defaults(func=_main, prog=parser.prog)
    _register_merge_and_status(parser)
    return parser


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_parts(run: Callable[[dict], list[dict]], config: dict, jobs: int = 1) -> list[dict]:
    """``run(config)``, or with ``jobs > 1`` each of the config's ``runs`` as its own config
    in a pool of ``jobs`` processes (one thread each), concatenated in config order. The two
    agree record for record as long as every run is seeded by its own settings alone (no
    state carried from one run to the next), which is how the chapter modules build them."""
    runs = config.get("runs")
    if jobs <= 1 or not runs or len(runs) == 1:
        return run(config)
    import multiprocessing as mp

    from tqdm import tqdm  # a text bar, never a Jupyter widget

    parts = [{**config, "runs": [r]} for r in runs]
    # spawn, not fork: a forked child would inherit torch's thread pools from the parent
    with mp.get_context("spawn").Pool(min(jobs, len(parts)), initializer=_one_thread) as pool:
        # imap keeps the config's order; the bar counts the runs as they come back in it
        results = list(tqdm(pool.imap(run, parts, chunksize=1), total=len(parts), desc="runs"))
    return [record for part in results for record in part]


def records_main(
    run: Callable[[dict], list[dict]], description: str, argv: Sequence[str] | None = None
) -> None:
    """``python -m scalinglab.MODULE CONFIG.json --out records.jsonl`` for a chapter module
    whose records come from ``run(config)`` rather than a :class:`SweepGrid` (one thread:
    the shipped records were made that way). The module's own ``main`` calls it: a module's
    ``main`` is its command line, the only place outside this module and :mod:`scalinglab.cli`
    that may import it."""
    import torch  # (light at import: the sub-command line loads torch only when it runs)

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help="JSON config of the run")
    parser.add_argument("--out", required=True, help="JSON-lines file for the records")
    parser.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        help="processes, one run of the config each at a time (one thread each); the "
        "records are the same as with 1 job, in config order",
    )
    args = parser.parse_args(argv)
    with open(args.config) as f:
        config = json.load(f)
    torch.set_num_threads(1)
    records = run_parts(run, config, args.jobs)
    with open(args.out, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
