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
