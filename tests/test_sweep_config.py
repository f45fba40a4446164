"""Sweep configs: every bad field is named in a one-line error; the schema is the engine's."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import json
from importlib import resources

import pytest

from scalinglab.engine.sweep_config import (
    DATASETS,
    GRID,
    TRAINING,
    ConfigError,
    OutputExistsError,
    load_config,
    run_config,
    validate_config,
)

GOOD = {
    "description": "a tiny sweep",
    "dataset": {"name": "mnist1d", "n_train": 400, "n_test": 100, "label_noise": 0.1, "seed": 0},
    "task": "classification",
    "model": "mlp",
    "grid": {"widths": [4, 8], "n_train": [200, 400], "steps": [10], "seeds": [0], "depth": 1},
    "training": {"lr": 0.01, "batch_size": 20, "optimizer": "adamw", "activation": "relu"},
}


def _with(path: str, value=None, delete: bool = False) -> dict:
    """``GOOD`` with the dotted ``path`` set to ``value`` (or deleted)."""
    config = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    section = config
    for key in parents:
        section = section[key]
    if delete:
        del section[last]
    else:
        section[last] = value
    return config


def test_good_and_shipped_configs_pass():
    assert validate_config(copy.deepcopy(GOOD)) == GOOD
    shipped = [
        f
        for f in resources.files("scalinglab").joinpath("records").iterdir()
        if f.name.endswith(".config.json")
    ]
    assert shipped
    for f in shipped:
        config = json.loads(f.read_text())
        if "runner" in config:  # made by a chapter module's own main, not `scalinglab sweep`
            module = config["runner"].removeprefix("python -m ")
            assert callable(getattr(importlib.import_module(module), "main", None)), f.name
            continue
        validate_config(config, f.name)


@pytest.mark.parametrize(
    "config, field, words",
    [
        (_with("learning_rate", 0.1), "learning_rate", "unknown field"),
        (_with("training.learning_rate", 0.1), "training.learning_rate", "unknown field"),
        (_with("grid.width", [4]), "grid.width", "unknown field"),
        (_with("dataset.noise", 0.1), "dataset.noise", "unknown field"),
        (_with("grid.steps", delete=True), "grid.steps", "missing"),
        (_with("dataset", delete=True), "dataset", "missing"),
        (_with("dataset.name", delete=True), "dataset.name", "missing"),
        (_with("dataset.name", "imagenet"), "dataset.name", "imagenet"),
        (_with("grid.widths", "8"), "grid.widths", "integer >= 1"),
        (_with("grid.widths", [4, 0]), "grid.widths", "integer >= 1"),
        (_with("grid.widths", []), "grid.widths", "non-empty"),
        (_with("grid.depth", True), "grid.depth", "integer"),  # a bool is not a depth
        (_with("grid.depth", 2.0), "grid.depth", "integer"),
        (_with("grid.n_train", [800]), "grid.n_train", "exceeds dataset.n_train"),
        (_with("training.lr", -1), "training.lr", "> 0"),
        (_with("training.lr", "0.01"), "training.lr", "number"),
        (_with("training.optimizer", "adam"), "training.optimizer", "'adamw'"),
        (_with("training.batch_size", 0), "training.batch_size", "or null"),
        (_with("dataset.label_noise", 1.5), "dataset.label_noise", "[0, 1]"),
        (_with("task", "ranking"), "task", "'regression'"),
        (_with("model", "rnn"), "model", "'mlp'"),
        (_with("grid", [1, 2]), "grid", "JSON object"),
    ],
)
def test_bad_config_names_the_field_in_one_line(config, field, words):
    with pytest.raises(ConfigError) as info:
        validate_config(config, "sweep.json")
    message = str(info.value)
    assert message.startswith(f"sweep.json: {field}: "), message
    assert words in message and "\n" not in message
    assert isinstance(info.value, ValueError)  # callers catching ValueError keep working


def test_markov_requires_its_sizes():
    config = _with("dataset", {"name": "markov", "vocab_size": 4, "context_length": 2})
    with pytest.raises(ConfigError, match=r"^config: dataset\.n_train: missing"):
        validate_config(config)


def test_load_config_reports_unreadable_files_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"dataset": {"name": "digits"},\n "grid": }')
    with pytest.raises(ConfigError, match=r"not valid JSON: .*\(line 2, column"):
        load_config(bad)
    bad.write_text(json.dumps(_with("grid.seeds", [-1])))
    with pytest.raises(ConfigError, match=r"bad\.json: grid\.seeds: expected an integer >= 0"):
        load_config(bad)


def test_existing_output_is_neither_resumed_nor_clobbered_by_default(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"kept": true}\n')
    with pytest.raises(OutputExistsError, match="--resume.*--force"):
        run_config(copy.deepcopy(GOOD), out)
    assert out.read_text() == '{"kept": true}\n'


def test_schema_matches_the_engine():
    """The checks cover exactly the arguments the engine takes, and the same names."""
    from scalinglab.data.digits import load_digits_split
    from scalinglab.data.markov import MarkovSource, markov_windows_dataset
    from scalinglab.data.mnist1d import make_mnist1d
    from scalinglab.data.modular import OPS, modular_arithmetic_dataset
    from scalinglab.data.teacher_student import MANIFOLDS, teacher_student_dataset
    from scalinglab.engine.sweep import SweepGrid, iter_sweep
    from scalinglab.engine.training import OPTIMIZERS
    from scalinglab.models.mlp import ACTIVATIONS, INITS

    def params(fn, drop=()):
        return set(inspect.signature(fn).parameters) - set(drop)

    assert set(DATASETS["mnist1d"]) == params(make_mnist1d)
    assert set(DATASETS["digits"]) == params(load_digits_split)
    assert set(DATASETS["teacher_student"]) == params(teacher_student_dataset)
    assert set(DATASETS["modular"]) == params(modular_arithmetic_dataset)
    random_args = params(MarkovSource.random, {"cls"}) - {"seed"} | {"source_seed"}
    assert set(DATASETS["markov"]) == random_args | params(markov_windows_dataset, {"source"})
    assert set(GRID) == {f.name for f in dataclasses.fields(SweepGrid)}
    # on_trained is a callback for code, not a config setting
    drop = {"grid", "dataset", "task", "device", "progress", "skip", "on_trained"}
    engine = params(iter_sweep, drop)
    assert set(TRAINING) == engine

    def accepted(schema, key, values):
        check = schema[key][0]
        return {v for v in values if check(v) is None}

    assert accepted(TRAINING, "activation", [*ACTIVATIONS, "elu"]) == set(ACTIVATIONS)
    assert accepted(TRAINING, "init", [*INITS, "he"]) == set(INITS)
    assert accepted(TRAINING, "optimizer", [*OPTIMIZERS, "adam"]) == set(OPTIMIZERS)
    assert accepted(DATASETS["modular"], "op", [*OPS, "^"]) == set(OPS)
    assert accepted(DATASETS["teacher_student"], "manifold", [*MANIFOLDS, "x"]) == set(MANIFOLDS)


def test_errors_found_when_building_the_data_name_their_section(tmp_path):
    """Checks that need several fields or the data set itself run before any training."""
    out = tmp_path / "r.jsonl"
    torus = _with(
        "dataset",
        {"name": "teacher_student", "manifold": "torus", "intrinsic_dim": 2, "ambient_dim": 3},
    )
    torus["grid"]["n_train"] = [100]
    with pytest.raises(ConfigError, match=r"^dataset: ambient_dim must be >= 4"):
        run_config(torus, out)
    digits = _with("dataset", {"name": "digits"})
    digits["grid"]["n_train"] = [5000]
    with pytest.raises(ConfigError, match=r"^grid\.n_train: 5000 exceeds the 1347 training"):
        run_config(digits, out)
    assert not out.exists()
