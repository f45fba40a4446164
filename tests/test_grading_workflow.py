"""The instructor's and the student's workflow: feedback without hidden tests, parallel
grading equal to serial grading, work copies that a release cannot clobber, timestamps,
and one clear line for every bad input (with nothing recorded for it)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import nbformat
import pytest

from conftest import SANDBOX, gradebook_rows
from scalinglab.cli import main
from scalinglab.grading import (
    grade_submissions,
    release,
    release_notebook_path,
    source_notebook_path,
    with_solution_replaced,
)
from scalinglab.grading.gradebook import collect_submissions
from scalinglab.grading.notebooks import HIDDEN_BEGIN, HIDDEN_END, _between
from scalinglab.grading.release import WouldDiscardWork

A = "01-softmax-cross-entropy"

NAIVE_SOFTMAX = """def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z)  # overflows for large logits: fails a hidden test only
    return e / e.sum(axis=-1, keepdims=True)"""


def _hidden_lines(course) -> set[str]:
    source = nbformat.read(source_notebook_path(A, course), 4)
    lines = set()
    for cell in source.cells:
        for block in _between(cell.source, HIDDEN_BEGIN, HIDDEN_END):
            lines |= {line.strip() for line in block.splitlines() if len(line.strip()) >= 12}
    return lines


@pytest.mark.slow
def test_parallel_grading_equals_serial_and_feedback_hides_hidden_tests(course, tmp_path):
    source = source_notebook_path(A, course)
    naive = with_solution_replaced(source, {"softmax": NAIVE_SOFTMAX}, tmp_path / "naive.ipynb")
    untouched = release_notebook_path(A, course)
    pairs = [("ana", source), ("ben", naive), ("cem", untouched)]
    results = {}
    for jobs in (1, 2):
        root = tmp_path / f"jobs{jobs}"
        reports = grade_submissions(
            A, pairs, gradebook=root / "gradebook.db", course=course, jobs=jobs,
            feedback_root=root, sandbox=SANDBOX,
        )  # fmt: skip
        results[jobs] = (
            [(r.student, r.parts, r.messages) for r in reports],
            gradebook_rows(root / "gradebook.db"),
        )
    assert results[1] == results[2]
    lost = {student: sum(m - s for s, m in parts.values()) for student, parts, _ in results[1][0]}
    full = sum(m for _, m in results[1][0][0][1].values())
    assert lost == {"ana": 0, "ben": 2, "cem": full}  # ben's naive softmax: test_softmax

    root = tmp_path / "jobs2"
    hidden = _hidden_lines(course)
    for student in ("ana", "ben", "cem"):
        html = (root / "feedback" / student / A / f"{A}.html").read_text()
        leaked = sorted(line for line in hidden if line in html)
        assert leaked == [], f"hidden test lines in {student}'s feedback: {leaked}"
        assert (root / "autograded" / student / A / f"{A}.ipynb").is_file()
    ben = (root / "feedback" / "ben" / A / f"{A}.html").read_text()
    assert "test_softmax: failed, 0 / 2 points" in ben and "a hidden test failed" in ben
    cem = (root / "feedback" / "cem" / A / f"{A}.html").read_text()
    assert "NotImplementedError" in cem  # the visible test's message reaches the student


@pytest.mark.slow
def test_timestamps_and_several_notebooks_in_one_folder(course, tmp_path, monkeypatch):
    from scalinglab.grading import Course

    root = tmp_path / "course"
    for name in ("nbgrader_config.py",):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text((course.root / name).read_text())
    (root / "solutions").symlink_to(course.source_dir)
    (root / "exercises").symlink_to(course.release_dir)
    mine = Course(root)
    folder = root / "submitted" / "dana" / A
    folder.mkdir(parents=True)
    (folder / f"{A}.ipynb").write_bytes(source_notebook_path(A, course).read_bytes())
    (folder / "scratch.ipynb").write_bytes(release_notebook_path(A, course).read_bytes())
    (folder / "timestamp.txt").write_text("2026-11-20 17:59:00.000000 UTC")
    warnings = []
    pairs = collect_submissions(mine, A, warn=warnings.append)
    assert pairs == [("dana", folder / f"{A}.ipynb")]
    assert "scratch.ipynb" in warnings[0] and f"graded {A}.ipynb" in warnings[0]
    db = tmp_path / "gradebook.db"
    (report,) = grade_submissions(A, pairs, gradebook=db, course=mine, sandbox=SANDBOX)
    assert not report.lost(), report.summary()
    with sqlite3.connect(db) as conn:
        (stamp,) = conn.execute("SELECT timestamp FROM submitted_assignment").fetchone()
    assert stamp.startswith("2026-11-20 17:59:00")


def test_missing_and_unreadable_files_are_reported_not_recorded(course, tmp_path):
    garbage = tmp_path / "garbage.ipynb"
    garbage.write_text("{ not json")
    db = tmp_path / "gradebook.db"
    reports = grade_submissions(
        A, [("gone", tmp_path / "missing.ipynb"), ("junk", garbage)], gradebook=db,
        course=course, sandbox=SANDBOX,
    )  # fmt: skip
    assert [r.error.split(":")[0] for r in reports] == ["not a notebook", "not a notebook"]
    assert "does not exist" in reports[0].error
    assert gradebook_rows(db) == []


def test_release_refuses_to_discard_work_and_start_makes_a_copy(course, tmp_path, capsys):
    target = tmp_path / "exercises"
    (target / A).mkdir(parents=True)
    worked = target / A / f"{A}.ipynb"
    worked.write_bytes(source_notebook_path(A, course).read_bytes())  # filled-in solutions
    with pytest.raises(WouldDiscardWork, match="solution cells softmax"):
        release(A, course, release_dir=target)
    assert worked.read_bytes() == source_notebook_path(A, course).read_bytes()
    release(A, course, release_dir=target, force=True)
    assert "NotImplementedError" in worked.read_text()

    work = tmp_path / "work"
    assert main(["start", A, "--dir", str(work)]) == 0
    copy = work / A / f"{A}.ipynb"
    assert copy.read_bytes() == release_notebook_path(A, course).read_bytes()
    copy.write_text(copy.read_text().replace("raise NotImplementedError()", "pass", 1))
    assert main(["start", A, "--dir", str(work)]) == 1  # refuses to overwrite the work
    assert "exists (your work?)" in capsys.readouterr().err
    assert "pass" in copy.read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["grade", "02-nope"], "unknown assignment '02-nope'; known: "),
        (["release", "01-nope"], "unknown assignment '01-nope'; known: "),
        (["start", "01-nope"], "unknown assignment '01-nope'; known: "),
        (["validate", "missing.ipynb"], "missing.ipynb: no such file"),
        (["validate", "README.md"], "README.md: not a valid notebook"),
    ],
)
def test_bad_inputs_get_one_line_and_no_traceback(argv, message, course):
    run = subprocess.run(
        [sys.executable, "-m", "scalinglab.cli", *argv],
        capture_output=True,
        text=True,
        cwd=course.root,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_nbgrader_list_works_with_the_course_exchange(course):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    run = subprocess.run(
        ["nbgrader", "list"], capture_output=True, text=True, cwd=course.root, env=env
    )
    assert run.returncode == 0, run.stderr
    assert "Released assignments" in run.stderr + run.stdout


def test_grade_refuses_without_a_sandbox_unless_told(course, monkeypatch, capsys):
    import scalinglab.grading.sandbox as sandbox

    monkeypatch.setattr(sandbox, "available", lambda: (False, "bubblewrap is not installed"))
    assert main(["grade", A, "x=missing.ipynb", "--gradebook", "/nonexistent/gb.db"]) == 2
    err = capsys.readouterr().err
    assert "no sandbox" in err and "--unsandboxed" in err and len(err.strip().splitlines()) == 1


def test_the_sandbox_is_there_where_required():
    """CI sets SCALINGLAB_REQUIRE_SANDBOX: there the sandboxed tests must run, not skip."""
    from conftest import NO_SANDBOX_REASON

    if os.environ.get("SCALINGLAB_REQUIRE_SANDBOX"):
        assert SANDBOX, NO_SANDBOX_REASON


def test_the_sandbox_mounts_its_private_tmp_before_binding_the_environment(tmp_path):
    """A course (and its .venv) under /tmp must stay visible: /tmp is mounted first."""
    from scalinglab.grading import sandbox

    cmd = sandbox.command(["true"], [tmp_path])
    binds = [i for i, arg in enumerate(cmd) if arg == "--ro-bind"]
    assert cmd.index("--tmpfs") < min(binds)
    assert cmd.index("--proc") < min(binds) and cmd.index("--dev") < min(binds)


def test_the_graders_working_directory_is_never_bound(tmp_path, monkeypatch):
    """Found by grading a spy with `scalinglab grade`: the worker runs `python -m` in its
    private folder (the submission copy, its log), which is then on sys.path; that folder
    must not be visible in the sandbox."""
    from scalinglab.grading import sandbox

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    bound = sandbox.readable_paths([])
    assert not any(p == tmp_path or tmp_path in p.parents for p in bound), bound
    assert bound  # the environment itself is still bound
