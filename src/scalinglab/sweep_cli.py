"""``scalinglab sweep CONFIG.json --out records.jsonl``: long sweeps from the command line.

The lead hooks :func:`register` into ``scalinglab.cli``. The config is a JSON file::

    {
      "dataset": {"name": "mnist1d", "n_train": 4000, "n_test": 1000,
                  "label_noise": 0.15, "seed": 0},
      "task": "classification",
      "model": "mlp",
      "grid": {"widths": [4, 8, 16, 32], "n_train": [4000], "steps": [1000, 4000],
               "seeds": [0, 1], "depth": 1},
      "training": {"lr": 0.001, "weight_decay": 0.0, "optimizer": "adamw",
                   "batch_size": 256, "log_every": 500, "activation": "relu"}
    }

``dataset.name`` is one of ``mnist1d`` (keys of :func:`~scalinglab.data.mnist1d.make_mnist1d`),
``digits`` (:func:`~scalinglab.data.digits.load_digits_split`), ``teacher_student``
(:func:`~scalinglab.data.teacher_student.teacher_student_dataset`), ``modular``
(:func:`~scalinglab.data.modular.modular_arithmetic_dataset`, one-hot encoded) or ``markov``
(``vocab_size, order, concentration, source_seed`` of
:meth:`scalinglab.data.markov.MarkovSource.random`, the rest for
:func:`~scalinglab.data.markov.markov_windows_dataset`); the other keys are passed to that function. ``grid`` holds the arguments of
:class:`~scalinglab.sweep.SweepGrid` and ``training`` the keyword arguments of
:func:`~scalinglab.sweep.run_sweep`. Only ``"model": "mlp"`` sweeps are supported.

Records (see :mod:`scalinglab.sweep` for the keys) are appended to ``--out`` one JSON object
per line as each group of models finishes, and flushed, so an interrupted run keeps what it
finished. With ``--resume``, models whose ``final`` record is already in the file are
skipped. :func:`load_records` reads such a file back.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path

from scalinglab.sweep import SweepGrid, iter_sweep, model_id


def load_dataset(spec: dict) -> dict:
    """Build the data set described by the config's ``dataset`` section."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name == "mnist1d":
        from scalinglab.data.mnist1d import make_mnist1d

        return make_mnist1d(**spec)
    if name == "digits":
        from scalinglab.data.digits import load_digits_split

        return load_digits_split(**spec)
    if name == "teacher_student":
        from scalinglab.data.teacher_student import teacher_student_dataset

        return teacher_student_dataset(**spec)
    if name == "modular":
        from scalinglab.data.modular import modular_arithmetic_dataset

        return modular_arithmetic_dataset(**{"encoding": "onehot", **spec})
    if name == "markov":
        from scalinglab.data.markov import MarkovSource, markov_windows_dataset

        source = MarkovSource.random(
            spec.pop("vocab_size"),
            order=spec.pop("order", 1),
            concentration=spec.pop("concentration", 0.5),
            seed=spec.pop("source_seed", 0),
        )
        return markov_windows_dataset(source, **spec)
    raise ValueError(
        f"unknown dataset {name!r}; use mnist1d, digits, teacher_student, modular or markov"
    )


def load_config(path: str | os.PathLike) -> dict:
    """Read and validate a sweep config (see the module docstring)."""
    config = json.loads(Path(path).read_text())
    for key in ("dataset", "grid"):
        if key not in config:
            raise ValueError(f"config {path} lacks the section {key!r}")
    if config.get("model", "mlp") != "mlp":
        raise ValueError(f"only 'mlp' sweeps are supported, got model={config['model']!r}")
    return config


def load_records(path: str | os.PathLike) -> list[dict]:
    """All records of a ``.jsonl`` file (blank lines and a torn last line are skipped)."""
    records = []
    lines = Path(path).read_text().splitlines()
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if k == len(lines) - 1:  # the run was killed mid-write
                break
            raise
    return records


def run_config(
    config: dict, out: str | os.PathLike, device=None, progress=True, resume=False
) -> int:
    """Run the sweep of ``config``, appending records to ``out``; return how many were written."""
    dataset = load_dataset(config["dataset"])
    grid = SweepGrid(**config["grid"])
    training = dict(config.get("training", {}))
    task = config.get("task", "classification")
    done: set[tuple] = set()
    out = Path(out)
    if resume and out.exists():
        old = load_records(out)
        done = {model_id(r) for r in old if r.get("final")}
        # Rewrite the file without the partial records of unfinished models.
        out.write_text("".join(json.dumps(r) + "\n" for r in old if model_id(r) in done))
    elif out.exists():
        out.unlink()
    records: Iterable[dict] = iter_sweep(
        grid, dataset, task=task, device=device, progress=progress, skip=done, **training
    )
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
            f.flush()
            written += 1
    return written


def _main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    n = run_config(config, args.out, args.device, not args.no_progress, args.resume)
    print(f"wrote {n} records to {args.out}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` sub-command to an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "sweep", help="train a grid of MLPs from a JSON config, write JSON-lines records"
    )
    parser.add_argument("config", help="JSON config: dataset, task, model, grid, training")
    parser.add_argument("--out", required=True, help="output file, one JSON record per line")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    parser.add_argument("--resume", action="store_true", help="skip models already finished")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_main)
    return parser
