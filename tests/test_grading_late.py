"""Late penalties as nbgrader applies them: a due date in the gradebook, an on-time and a
late submission, ``penalty_method = 'zero'``, then ``nbgrader export`` shows the penalty.
Also: ``'none'`` (nbgrader's default) and a custom plugin, on the same gradebook."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.plugins import LateSubmissionPlugin
from traitlets.config import Config

from conftest import SANDBOX, course_copy, submit
from scalinglab.cli import main
from scalinglab.grading import source_notebook_path
from scalinglab.grading.late import assign_late_penalties

A = "01-softmax-cross-entropy"
NBGRADER = str(Path(sys.executable).parent / "nbgrader")


class HalfPerDay(LateSubmissionPlugin):
    """A custom plugin: half the score per started day late."""

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        return score * min(1.0, 0.5 * -(-total_seconds_late // 86400))


def nbgrader(*args, cwd):
    done = subprocess.run([NBGRADER, *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def export(root: Path) -> dict[str, dict]:
    nbgrader("export", cwd=root)
    with open(root / "grades.csv", newline="") as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh)}


@pytest.mark.slow
def test_zero_penalty_for_a_late_submission_shows_in_nbgrader_export(course, tmp_path, monkeypatch):
    mine = course_copy(tmp_path, course, 'c.LateSubmissionPlugin.penalty_method = "zero"')
    monkeypatch.chdir(mine.root)
    monkeypatch.setenv("SCALINGLAB_COURSE_ROOT", str(mine.root))
    nbgrader("db", "assignment", "add", A, "--duedate=2026-11-20 18:00:00 UTC", cwd=mine.root)
    solution = source_notebook_path(A, course)
    submit(mine, "alice", A, solution, "2026-11-20 17:59:00.000000 UTC")  # a minute early
    submit(mine, "bob", A, solution, "2026-11-21 09:30:00.000000 UTC")  # 15.5 hours late
    argv = ["grade", A, "--jobs", "2", "--no-feedback", "--gradebook", "gradebook.db"]
    assert main(argv + ([] if SANDBOX else ["--unsandboxed"])) == 0
    rows = export(mine.root)
    # every autograded point: max_score also holds the written answer, which waits for a
    # person (2 points)
    full = float(rows["alice"]["max_score"]) - 2.0
    assert full > 0
    assert rows["alice"]["duedate"].startswith("2026-11-20 18:00:00")
    assert float(rows["alice"]["raw_score"]) == full
    assert float(rows["alice"]["late_submission_penalty"]) == 0.0
    assert float(rows["alice"]["score"]) == full
    assert float(rows["bob"]["raw_score"]) == full
    assert float(rows["bob"]["late_submission_penalty"]) == full
    assert float(rows["bob"]["score"]) == 0.0

    # the same gradebook, other configurations: nbgrader's default, then a custom plugin
    url = f"sqlite:///{mine.root / 'gradebook.db'}"
    notebooks = [source_notebook_path(A, course).stem]
    none = Config()
    none.LateSubmissionPlugin.penalty_method = "none"
    assert assign_late_penalties(none, url, A, "bob", notebooks) == 0.0
    custom = Config()
    custom.AssignLatePenalties.plugin_class = HalfPerDay
    assert assign_late_penalties(custom, url, A, "bob", notebooks) == full / 2
    assert assign_late_penalties(custom, url, A, "alice", notebooks) == 0.0
    assert float(export(mine.root)["bob"]["score"]) == full / 2
