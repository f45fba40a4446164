"""A server gradebook: a class graded in parallel into a real PostgreSQL (started by the
``postgres_url`` fixture) reads back through ``nbgrader export`` exactly as with SQLite.

Skipped where PostgreSQL is not installed, unless ``SCALINGLAB_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SANDBOX, course_copy, submit
from scalinglab.cli import main
from scalinglab.grading import release_notebook_path, source_notebook_path
from scalinglab.grading.notebooks import with_solution_replaced

A = "01-softmax-cross-entropy"
NAIVE_SOFTMAX = """def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z)  # overflows for large logits: fails a hidden test only
    return e / e.sum(axis=-1, keepdims=True)"""


def export(root: Path, *args: str) -> list[dict]:
    out = root / "export.csv"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "export", f"--to={out}", *args],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out, newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda row: row["student_id"])


@pytest.mark.slow
def test_parallel_grading_into_postgres_exports_like_sqlite(
    course, tmp_path, monkeypatch, postgres_url
):
    mine = course_copy(tmp_path, course)
    monkeypatch.chdir(mine.root)
    monkeypatch.setenv("SCALINGLAB_COURSE_ROOT", str(mine.root))
    naive = with_solution_replaced(
        source_notebook_path(A, course), {"softmax": NAIVE_SOFTMAX}, tmp_path / "naive.ipynb"
    )
    stamp = "2026-11-20 17:59:00.000000 UTC"
    submit(mine, "alice", A, source_notebook_path(A, course), stamp)
    submit(mine, "bob", A, release_notebook_path(A, course), stamp)
    submit(mine, "carol", A, naive, stamp)
    argv = ["grade", A, "--jobs", "2", "--no-feedback"] + ([] if SANDBOX else ["--unsandboxed"])
    assert main([*argv, "--db-url", postgres_url]) == 0
    assert main([*argv, "--gradebook", "gradebook.db"]) == 0
    from_postgres = export(mine.root, f"--db={postgres_url}")
    from_sqlite = export(mine.root)  # nbgrader_config.py: sqlite:///gradebook.db
    assert [row["student_id"] for row in from_postgres] == ["alice", "bob", "carol"]
    assert from_postgres == from_sqlite
    scores = {row["student_id"]: float(row["score"]) for row in from_postgres}
    # max_score includes the written answer, which waits for a person (2 points)
    full = float(from_postgres[0]["max_score"]) - 2.0
    assert scores == {"alice": full, "bob": 0.0, "carol": full - 2.0}  # softmax: 2 points
