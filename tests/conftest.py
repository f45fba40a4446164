"""Shared fixtures: the course checkout and its assignments."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalinglab.grading import Course

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def course() -> Course:
    return Course(ROOT)


def assignments() -> list[str]:
    return Course(ROOT).assignments()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread per test process: with ``pytest -n 2`` on 2 cores, more threads
    only oversubscribe the CPU (and make timings noisy)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
