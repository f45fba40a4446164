"""The `scalinglab` command line."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from scalinglab.cli import build_parser, main

A = "01-softmax-cross-entropy"


def test_list_names_every_assignment(capsys, course):
    assert main(["list"]) == 0
    assert capsys.readouterr().out.split() == course.assignments()


def test_parser_has_all_commands():
    sub = build_parser()._subparsers._group_actions[0].choices
    assert {"list", "release", "validate", "grade", "sweep"} <= set(sub)


def test_release_rejects_unknown_assignment():
    with pytest.raises(ValueError, match="unknown assignment"):
        main(["release", "99-nope"])


@pytest.mark.slow
def test_validate_reports_parts_and_exit_status(tmp_path, course):
    release = course.release_dir / A / f"{A}.ipynb"
    solution = course.source_dir / A / f"{A}.ipynb"
    shutil.copy(release, tmp_path / "student.ipynb")
    shutil.copy(solution, tmp_path / "done.ipynb")
    cmd = [sys.executable, "-m", "scalinglab.cli", "validate"]
    untouched = subprocess.run(
        cmd + [str(tmp_path / "student.ipynb")], capture_output=True, text=True
    )
    assert untouched.returncode == 1
    assert "not attempted" in untouched.stdout and "0 / 10 points" in untouched.stdout
    done = subprocess.run(cmd + [str(tmp_path / "done.ipynb")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "10 / 10 points" in done.stdout and "[FAIL]" not in done.stdout
