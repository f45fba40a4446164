"""Progress bars of the library are text, never Jupyter widgets (a widget needs scripts from
a CDN, so the offline book would show an empty slot), and a sweep shows none off a terminal
(in a notebook, on a book page, in a log) unless asked to."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import tqdm.std

from scalinglab.engine.sweep import SweepGrid, run_sweep


@pytest.mark.parametrize(
    "module", ["engine.sweep", "engine.training", "engine.ensemble", "next_token"]
)
def test_library_bars_are_text_bars(module):
    assert importlib.import_module(f"scalinglab.{module}").tqdm is tqdm.std.tqdm


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return {"x_train": x[:30], "y_train": y[:30], "x_test": x[30:], "y_test": y[30:]}


def test_sweep_shows_a_bar_only_on_a_terminal_or_when_asked(data, capsys):
    grid = SweepGrid(widths=[2], n_train=[30], steps=[2], seeds=[0])
    run_sweep(grid, data, device="cpu")  # pytest's captured stderr is no terminal
    assert "sweep" not in capsys.readouterr().err
    run_sweep(grid, data, device="cpu", progress=True)
    assert "sweep" in capsys.readouterr().err
