"""The ``scalinglab sweep`` sub-command: a thin argument parser over :mod:`scalinglab.engine.sweep_config`.

The config format, the checks and the running live in :mod:`scalinglab.engine.sweep_config`;
this module only parses arguments, prints one-line errors and the hint to resume.
"""

from __future__ import annotations

import argparse
import shlex
import sys

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

exit status: 0 done, 2 bad arguments or config, 130 interrupted (Ctrl-C)."""


def _error(args: argparse.Namespace, message: str) -> int:
    print(f"{args.prog}: error: {message}", file=sys.stderr)
    return 2


def resume_command(args: argparse.Namespace) -> str:
    """The shell command that continues the sweep ``args`` describes."""
    words = ["scalinglab", "sweep", args.config, "--out", str(args.out), "--resume"]
    if args.device:
        words += ["--device", args.device]
    if args.no_progress:
        words.append("--no-progress")
    return shlex.join(words)


def _main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        n = run_config(
            config,
            args.out,
            device=args.device,
            progress=not args.no_progress,
            resume=args.resume,
            force=args.force,
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


def register(subparsers, formatter_class=argparse.HelpFormatter) -> argparse.ArgumentParser:
    """Add the ``sweep`` sub-command to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of MLPs from a JSON config, write JSON-lines records",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=formatter_class,
    )
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
    parser.set_defaults(func=_main, prog=parser.prog)
    return parser
