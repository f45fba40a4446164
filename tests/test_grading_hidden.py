"""Hidden inputs: derived from the instructor's secret, stable without one."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.grading import hidden


def test_public_default_is_stable_and_differs_per_test(monkeypatch, tmp_path):
    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    monkeypatch.delenv(hidden.SECRET_FILE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    a = hidden.hidden_rng("01-x", "test_a").normal(size=4)
    assert np.array_equal(a, hidden.hidden_rng("01-x", "test_a").normal(size=4))
    assert not np.array_equal(a, hidden.hidden_rng("01-x", "test_b").normal(size=4))
    assert not np.array_equal(a, hidden.hidden_rng("02-x", "test_a").normal(size=4))


def test_secret_changes_every_input(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    public = hidden.hidden_seed("01-x", "test_a")
    monkeypatch.setenv(hidden.SECRET_ENV, "s3cret")
    assert hidden.hidden_seed("01-x", "test_a") != public
    monkeypatch.delenv(hidden.SECRET_ENV)
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    monkeypatch.setenv(hidden.SECRET_FILE_ENV, str(secret_file))
    assert hidden.instructor_secret() == "s3cret"
    monkeypatch.setenv(hidden.SECRET_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        hidden.instructor_secret()
