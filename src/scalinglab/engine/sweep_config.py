"""Sweep configs: read, check and run the JSON files behind ``scalinglab sweep``.

A config names a data set, a grid of MLPs and how to train them::

    {
      "description": "free text (optional)",
      "dataset": {"name": "mnist1d", "n_train": 4000, "n_test": 1000,
                  "label_noise": 0.15, "seed": 0},
      "task": "classification",
      "model": "mlp",
      "grid": {"widths": [4, 8, 16, 32], "n_train": [4000], "steps": [1000, 4000],
               "seeds": [0, 1], "depth": 1},
      "training": {"lr": 0.001, "weight_decay": 0.0, "optimizer": "adamw",
                   "batch_size": 256, "log_every": 500, "activation": "relu"}
    }

``dataset.name`` is one of ``mnist1d`` (the arguments of
:func:`~scalinglab.data.mnist1d.make_mnist1d`), ``digits``
(:func:`~scalinglab.data.digits.load_digits_split`), ``teacher_student``
(:func:`~scalinglab.data.teacher_student.teacher_student_dataset`), ``modular``
(:func:`~scalinglab.data.modular.modular_arithmetic_dataset`, one-hot encoded unless
``encoding`` says otherwise) or ``markov`` (``vocab_size, order, concentration, source_seed``
of :meth:`scalinglab.data.markov.MarkovSource.random`, the rest for
:func:`~scalinglab.data.markov.markov_windows_dataset`) or ``zipf_lookup``
(:func:`~scalinglab.data.zipf_lookup.zipf_lookup_dataset`). ``grid`` holds the arguments of
:class:`~scalinglab.engine.sweep.SweepGrid` and ``training`` the keyword arguments of
:func:`~scalinglab.engine.sweep.iter_sweep`. Only ``"model": "mlp"`` sweeps are supported.

:func:`load_config` reads a config and checks every field (:class:`ConfigError`, a
``ValueError``, names the first bad one, e.g. ``grid.widths``), :func:`run_config` trains it
and appends the records (see :mod:`scalinglab.engine.sweep`) to a JSON-lines file, one group of
models at a time and flushed, so an interrupted run keeps what it finished; ``resume=True``
skips the models whose ``final`` record is already there. :func:`load_records` reads such a
file back.

This module is the library behind the command line (:mod:`scalinglab.sweep_cli`); it imports
torch only when a sweep actually runs.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "ConfigError",
    "OutputExistsError",
    "SweepInterrupted",
    "load_config",
    "load_dataset",
    "load_records",
    "prepare_sweep",
    "run_config",
    "validate_config",
    "write_records",
]


class ConfigError(ValueError):
    """A sweep config that cannot be run; the message names the offending field."""


class OutputExistsError(FileExistsError):
    """The output file already holds records and neither resuming nor overwriting was asked."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_config`; the records written so far are kept.

    ``written``: records written by this run; ``total``: records now in the file;
    ``out``: the file.
    """

    def __init__(self, written: int, total: int, out: Path) -> None:
        super().__init__(f"sweep interrupted after writing {written} records to {out}")
        self.written, self.total, self.out = written, total, out


# --------------------------------------------------------------------------- the schema
# A check takes a value and returns None (fine) or what was expected, as a phrase.
Check = Callable[[object], "str | None"]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (isinstance(v, int | float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(minimum: int) -> Check:
    def check(v):
        return None if _is_int(v) and v >= minimum else f"an integer >= {minimum}"

    return check


def _number(low: float | None = None, high: float | None = None, open_low=False, open_high=False):
    lo = "(" if open_low else "["
    hi = ")" if open_high else "]"
    if low is not None and high is not None:
        want = f"a number in {lo}{low}, {high}{hi}"
    elif low is not None:
        want = f"a number {'>' if open_low else '>='} {low}"
    else:
        want = "a number"

    def check(v):
        if not _is_number(v):
            return want
        if low is not None and (v <= low if open_low else v < low):
            return want
        if high is not None and (v >= high if open_high else v > high):
            return want
        return None

    return check


def _choice(*options: str) -> Check:
    want = "one of " + ", ".join(repr(o) for o in options)
    return lambda v: None if v in options and isinstance(v, str) else want


def _string(v: object) -> str | None:
    return None if isinstance(v, str) else "a string"


def _mapping(v: object) -> str | None:
    return None if isinstance(v, dict) else "a JSON object {...}"


def _optional(check: Check) -> Check:
    def wrapped(v):
        if v is None:
            return None
        problem = check(v)
        return None if problem is None else f"{problem} or null"

    return wrapped


def _list_of(check: Check) -> Check:
    """A value or a non-empty list of values that pass ``check``."""

    def wrapped(v):
        values = v if isinstance(v, list) else [v]
        if not values or any(check(x) is not None for x in values):
            return f"{check(object())} or a non-empty list of them"
        return None

    return wrapped


# name -> (check, required)
Schema = dict[str, tuple[Check, bool]]

SEED = (_int(0), False)

#: The data sets of a config and their fields (kept equal to the functions' signatures by
#: ``tests/test_sweep.py``).
DATASETS: dict[str, Schema] = {
    "mnist1d": {
        "n_train": (_int(1), False),
        "n_test": (_int(1), False),
        "label_noise": (_number(0, 1), False),
        "seed": SEED,
    },
    "digits": {"test_size": (_number(0, 1, open_low=True, open_high=True), False), "seed": SEED},
    "teacher_student": {
        "n_train": (_int(1), False),
        "n_test": (_int(1), False),
        "intrinsic_dim": (_int(1), False),
        "manifold": (_choice("sphere", "torus", "subspace"), False),
        "ambient_dim": (_optional(_int(1)), False),
        "teacher_width": (_int(1), False),
        "teacher_depth": (_int(1), False),
        "out_dim": (_int(1), False),
        "noise_std": (_number(0), False),
        "seed": SEED,
    },
    "modular": {
        "p": (_int(2), False),
        "op": (_choice("+", "-", "*", "/"), False),
        "train_fraction": (_number(0, 1, open_low=True, open_high=True), False),
        "seed": SEED,
        "encoding": (_choice("tokens", "onehot"), False),
    },
    "markov": {
        "vocab_size": (_int(2), True),
        "order": (_int(1), False),
        "concentration": (_number(0, open_low=True), False),
        "source_seed": SEED,
        "context_length": (_int(1), True),
        "n_train": (_int(1), True),
        "n_test": (_int(1), True),
        "seed": SEED,
    },
    "zipf_lookup": {
        "n_train": (_int(1), True),
        "n_test": (_int(1), True),
        "n_facts": (_int(1), False),
        "n_bits": (_int(1), False),
        "n_classes": (_int(2), False),
        "zipf_exponent": (_number(1, open_low=True), False),
        "noise": (_number(0, 1), False),
        "source_seed": SEED,
        "seed": SEED,
    },
}

TOP: Schema = {
    "description": (_string, False),
    "dataset": (_mapping, True),
    "task": (_choice("classification", "regression"), False),
    "model": (_choice("mlp"), False),
    "grid": (_mapping, True),
    "training": (_mapping, False),
}

#: The arguments of :class:`scalinglab.engine.sweep.SweepGrid`.
GRID: Schema = {
    "widths": (_list_of(_int(1)), True),
    "n_train": (_list_of(_int(1)), True),
    "steps": (_list_of(_int(0)), False),
    "seeds": (_list_of(_int(0)), False),
    "depth": (_int(1), False),
    "lrs": (_optional(_list_of(_number(0, open_low=True))), False),
    "weight_decays": (_optional(_list_of(_number(0))), False),
    "epochs": (_optional(_number(0, open_low=True)), False),
    "max_flops": (_optional(_number(0, open_low=True)), False),
}

#: The keyword arguments of :func:`scalinglab.engine.sweep.iter_sweep` a config may set (names of
#: activations, inits and optimizers are checked against the engine's by the tests).
TRAINING: Schema = {
    "lr": (_number(0, open_low=True), False),
    "weight_decay": (_number(0), False),
    "optimizer": (_choice("adamw", "sgd"), False),
    "momentum": (_number(0, 1, open_high=True), False),
    "batch_size": (_optional(_int(1)), False),
    "log_every": (_optional(_int(1)), False),
    "activation": (_choice("relu", "tanh", "gelu", "silu", "sigmoid", "identity"), False),
    "init": (_choice("kaiming", "xavier", "normal", "torch"), False),
    "max_models_per_group": (_int(1), False),
    "schedule": (_choice("constant", "cosine"), False),
    "warmup_fraction": (_number(0, 1, open_high=True), False),
}


def _check_section(section: Mapping, schema: Schema, where: str, source: str) -> None:
    prefix = f"{where}." if where else ""
    for key in section:
        if key not in schema:
            raise ConfigError(
                f"{source}: {prefix}{key}: unknown field; "
                f"expected one of {', '.join(schema) if schema else '(none)'}"
            )
    for key, (check, required) in schema.items():
        if key not in section:
            if required:
                raise ConfigError(f"{source}: {prefix}{key}: missing (required)")
            continue
        problem = check(section[key])
        if problem is not None:
            raise ConfigError(
                f"{source}: {prefix}{key}: expected {problem}, got {json.dumps(section[key])}"
            )


def validate_config(config: object, source: str = "config") -> dict:
    """Check every field of a sweep config; raise :class:`ConfigError` naming the first bad one.

    ``source`` (e.g. the file name) starts the message. Returns ``config`` unchanged.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a JSON object {{...}} at the top level")
    _check_section(config, TOP, "", source)
    dataset = config["dataset"]
    name = dataset.get("name")
    if name is None:
        raise ConfigError(f"{source}: dataset.name: missing (required)")
    if name not in DATASETS:
        raise ConfigError(
            f"{source}: dataset.name: expected one of {', '.join(DATASETS)}, got {json.dumps(name)}"
        )
    _check_section(
        {k: v for k, v in dataset.items() if k != "name"}, DATASETS[name], "dataset", source
    )
    _check_section(config["grid"], GRID, "grid", source)
    if "steps" not in config["grid"] and config["grid"].get("epochs") is None:
        raise ConfigError(f"{source}: grid.steps: missing (required unless grid.epochs is set)")
    _check_section(config.get("training", {}), TRAINING, "training", source)
    # Relations between sections that are known before any data is built.
    n_train = config["grid"]["n_train"]
    largest = max(n_train) if isinstance(n_train, list) else n_train
    available = dataset.get("n_train")
    if available is not None and largest > available:
        raise ConfigError(
            f"{source}: grid.n_train: {largest} exceeds dataset.n_train = {available}"
        )
    return config


def load_config(path: str | os.PathLike) -> dict:
    """Read a sweep config file and check it (see :func:`validate_config`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    return validate_config(config, str(path))


# --------------------------------------------------------------------------- running
def load_dataset(spec: Mapping) -> dict:
    """Build the data set described by a config's ``dataset`` section."""
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
    if name == "zipf_lookup":
        from scalinglab.data.zipf_lookup import zipf_lookup_dataset

        return zipf_lookup_dataset(**spec)
    raise ConfigError(
        f"dataset.name: expected one of {', '.join(DATASETS)}, got {json.dumps(name)}"
    )


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


def write_records(records: Sequence[dict], out: str | os.PathLike) -> None:
    """Write ``records`` to ``out`` (JSON lines) in one step: a reader never sees half a file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, out)


def prepare_sweep(config: dict):
    """Build what the sweep of a checked ``config`` needs: ``(grid, dataset, task, training)``.

    ``grid`` is a :class:`~scalinglab.engine.sweep.SweepGrid`, ``dataset`` the arrays,
    ``training`` the keyword arguments of :func:`~scalinglab.engine.sweep.iter_sweep`.
    Problems that depend on several fields (a manifold and its ambient dimension, say) are
    found here and raised as :class:`ConfigError`.
    """
    from scalinglab.engine.sweep import SweepGrid  # imports torch

    validate_config(config)
    try:
        dataset = load_dataset(config["dataset"])
    except ValueError as exc:
        raise ConfigError(f"dataset: {exc}") from None
    available = len(dataset["x_train"])
    try:
        grid = SweepGrid(**config["grid"])
    except ValueError as exc:
        raise ConfigError(f"grid: {exc}") from None
    if max(grid.n_train) > available:
        raise ConfigError(
            f"grid.n_train: {max(grid.n_train)} exceeds the {available} training examples "
            f"of dataset {config['dataset']['name']!r}"
        )
    return grid, dataset, config.get("task", "classification"), dict(config.get("training", {}))


def run_config(
    config: dict,
    out: str | os.PathLike,
    device=None,
    progress: bool = True,
    resume: bool = False,
    force: bool = False,
    shard: tuple[int, int] | None = None,
) -> int:
    """Run the sweep of ``config``, appending records to ``out``; return how many were written.

    An ``out`` that already holds records is continued with ``resume=True`` (models with a
    ``final`` record are skipped, partial records of the others dropped) or replaced with
    ``force=True``; otherwise :class:`OutputExistsError` is raised and nothing is touched.
    Ctrl-C raises :class:`SweepInterrupted` (a ``KeyboardInterrupt``) once the records
    written so far are safely on disk.

    ``shard=(i, n)`` trains only shard ``i`` of ``n`` (:mod:`scalinglab.engine.shards`): the
    same batched groups as the whole sweep, so its records are those of the whole sweep.
    """
    validate_config(config)
    out = Path(out)
    has_records = out.exists() and out.stat().st_size > 0
    if has_records and not (resume or force):
        raise OutputExistsError(
            f"{out} already holds records: resume it (--resume) or overwrite it (--force)"
        )
    from scalinglab.engine.sweep import iter_sweep, model_id  # imports torch

    grid, dataset, task, training = prepare_sweep(config)
    skip: set[tuple] = set()
    if shard is not None:
        from scalinglab.engine.shards import plan_shards

        plan = plan_shards(grid, dataset, task, training, shard[1])
        skip = set(plan.models()) - set(plan.models(shard[0]))
    done: set[tuple] = set()
    kept = 0
    if resume and has_records:
        old = load_records(out)
        done = {model_id(r) for r in old if r.get("final")}
        # Rewrite the file without the partial records of unfinished models.
        lines = [json.dumps(r) + "\n" for r in old if model_id(r) in done]
        out.write_text("".join(lines))
        kept = len(lines)
    elif out.exists():
        out.unlink()
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out.open("a") as f:
            records = iter_sweep(
                grid,
                dataset,
                task=task,
                device=device,
                progress=progress,
                skip=done | skip,
                **training,
            )
            for record in records:
                f.write(json.dumps(record) + "\n")
                f.flush()
                written += 1
    except KeyboardInterrupt:
        total = len(load_records(out))  # what is on disk, whatever line Ctrl-C hit
        raise SweepInterrupted(total - kept, total, out) from None
    return written
