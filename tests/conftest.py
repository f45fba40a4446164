"""Shared fixtures: the course checkout and its assignments."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from scalinglab.grading import Course
from scalinglab.grading.sandbox import available
from scalinglab.grading.variants import SELF_STUDY

ROOT = Path(__file__).resolve().parents[1]
# Grade in the OS sandbox where bubblewrap works (CI installs it); elsewhere the scoring
# tests still run, unsandboxed, and the security tests skip (tests/test_grading_hostile.py).
SANDBOX, NO_SANDBOX_REASON = available()


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


# Tests that `make test` runs but `make test-fast` leaves out, besides those marked slow where
# they are defined: the longest of a `make test-fast` run (seconds, `--durations`, on 2 cores
# at a load average of about 10, so several times their idle time). One list here, so the
# fast subset is tuned in one place; each gets the `slow` marker at collection.
SLOW_BY_DURATION = {
    # re-trains one ensemble of the parameter-law sweep: 9 networks for 16000 steps
    "test_quanta_params.py::test_smallest_ensemble_regenerates_from_its_config": 70,
    "test_resolution.py::test_converged_mlp_claims_of_the_page": 395,
    "test_resolution.py::test_linear_interpolation_mse_exponent_is_minus_four_over_d": 335,
    "test_resolution.py::test_default_margin_is_wide_enough": 108,
    # computes the interpolation curves the tests above had cached for it: 192 s once they left
    "test_resolution.py::test_closing_the_loop_measured_exponents_match_twonn_predictions": 192,
    "test_resolution.py::test_periodic_interpolation_equals_plain_delaunay_in_the_interior": 69,
    "test_resolution.py::test_one_nn_at_d8_comes_out_flat_and_linear_beats_it_a_thousandfold_at_d2": 16,
    "test_resolution.py::test_spacing_exponent_drifts_at_high_d_in_the_embedding_but_not_on_the_torus": 15,
    "test_resolution.py::test_seed_records_contain_the_pages_own_sample": 11,
    "test_signal_propagation.py::test_finite_width_scatter_the_page_quotes": 47,
    "test_random_features.py::test_smallest_singular_value_follows_marchenko_pastur": 31,
    "test_random_features.py::test_ridgeless_risk_matches_hastie_et_al_theorem": 18,
    "test_grading_canvas.py::test_canvas_export_fills_in_canvas_own_file": 34,
    "test_grading_canvas.py::test_canvas_export_without_a_roster": 34,
    "test_grading_workflow.py::test_missing_and_unreadable_files_are_reported_not_recorded": 18,
    "test_grading_workflow.py::test_release_refuses_to_discard_work_and_start_makes_a_copy": 16,
    "test_grading_workflow.py::test_bad_inputs_get_one_line_and_no_traceback": 11,
    "test_grading.py::test_release_is_fresh_and_leak_free": 16,
    "test_grading_workflow.py::test_nbgrader_list_works_with_the_course_exchange": 18,
    "test_mup.py::test_live_slice_reproduces_the_records": 14,
    "test_shards.py::test_merged_shards_equal_the_unsharded_run_bit_for_bit": 13,
}


def pytest_collection_modifyitems(config, items):
    """Mark the tests of SLOW_BY_DURATION slow (all parameters of each)."""
    for item in items:
        name = f"{Path(item.fspath).name}::{getattr(item, 'originalname', item.name)}"
        if name in SLOW_BY_DURATION:
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    """End the run with one line that names what was skipped and why (a missing browser,
    sandbox, cluster or database skips its tests outside CI; say so plainly)."""
    reasons = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[re.sub(r"^Skipped: ", "", reason).strip()] += 1
    if reasons:
        parts = "; ".join(f"{n} × {reason}" for reason, n in reasons.most_common())
        terminalreporter.write_line(f"skipped {sum(reasons.values())} tests: {parts}")


def assert_mistakes_cost(course, tmp_path, assignment, replacements, points_lost):
    """Autograde the solution of ``assignment`` with some solution cells replaced by
    plausible mistakes (``{solution grade_id: source}``) and assert that exactly the test
    cells in ``points_lost`` (``{test grade_id: points}``) lose all of their points and
    every other part keeps full marks. Returns the report."""
    from scalinglab.grading import autograde, source_notebook_path, with_solution_replaced

    wrong = with_solution_replaced(
        source_notebook_path(assignment, course), replacements, tmp_path / "wrong.ipynb"
    )
    # graded under the id the solution notebooks carry (per-student variants check it)
    report = autograde(wrong, assignment, course, student=SELF_STUDY, sandbox=SANDBOX)
    assert report.error is None, report.summary()
    assert report.lost() == sorted(points_lost), report.summary()
    for part, points in points_lost.items():
        assert report.parts[part] == (0.0, points), report.summary()
    assert report.score == report.max_score - sum(points_lost.values())
    return report


def course_copy(tmp_path, course, extra_config: str = "") -> Course:
    """A course at ``tmp_path/course`` sharing this one's solutions and exercises (links), with
    its own ``nbgrader_config.py`` (``extra_config`` appended), gradebook and submissions."""
    root = tmp_path / "course"
    root.mkdir()
    (root / "nbgrader_config.py").write_text(
        (course.root / "nbgrader_config.py").read_text() + "\n" + extra_config + "\n"
    )
    (root / "solutions").symlink_to(course.source_dir)
    (root / "exercises").symlink_to(course.release_dir)
    return Course(root)


def submit(course: Course, student: str, assignment: str, notebook, timestamp: str) -> Path:
    """Put ``notebook`` where nbgrader's collect leaves it, with its ``timestamp.txt``."""
    folder = course.root / "submitted" / student / assignment
    folder.mkdir(parents=True)
    target = folder / f"{assignment}.ipynb"
    target.write_bytes(Path(notebook).read_bytes())
    (folder / "timestamp.txt").write_text(timestamp)
    return target


def gradebook_rows(db) -> list[tuple]:
    """``(student, grade_id, auto_score)`` of every grade in an nbgrader SQLite gradebook,
    sorted; checks the database's integrity and that no trigger was planted in it."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        triggers = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='trigger'")
        assert triggers.fetchone()[0] == 0
        return conn.execute(
            "SELECT student.id, base_cell.name, grade.auto_score FROM grade "
            "JOIN base_cell ON grade.cell_id = base_cell.id "
            "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
            "JOIN student ON submitted_assignment.student_id = student.id ORDER BY 1, 2"
        ).fetchall()


# ``SCALINGLAB_REQUIRE_POSTGRES=1`` (as in .ci/run): the PostgreSQL test must run, not skip.
REQUIRE_POSTGRES = os.environ.get("SCALINGLAB_REQUIRE_POSTGRES") == "1"


def _postgres_bin() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``createdb``: Debian's versioned folder
    (the newest), else the one ``pg_ctl`` on PATH resolves to."""
    tools = ("initdb", "pg_ctl", "createdb")
    folders = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: float(f.split("/")[-2]), reverse=True
    )
    on_path = shutil.which("pg_ctl")
    folders += [str(Path(on_path).resolve().parent)] if on_path else []
    for folder in folders:
        if all((Path(folder) / tool).is_file() for tool in tools):
            return Path(folder)
    return None


@pytest.fixture
def postgres_url():
    """A real PostgreSQL server for one test: ``initdb`` on a temporary data folder, served
    by ``pg_ctl`` on a Unix socket in that folder only (no TCP port), stopped afterwards by
    its postmaster's PID. Yields an SQLAlchemy URL of an empty database. PostgreSQL refuses
    to run as root, so as root the server runs as the ``postgres`` user."""
    bindir = _postgres_bin()
    if bindir is None:
        reason = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        (pytest.fail if REQUIRE_POSTGRES else pytest.skip)(reason)
    base = Path(tempfile.mkdtemp(prefix="scalinglab-pg-"))  # short: a socket path is <108 bytes
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = base / "data"

    def run(*argv):
        done = subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{argv[0]}: {done.stdout}{done.stderr}"

    pid = None
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8")
        options = f"-k {base} -c listen_addresses='' -F"
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(base / "log"),
            "-w",
            "start",
        )
        pid = int((data / "postmaster.pid").read_text().split()[0])
        run(str(bindir / "createdb"), "-h", str(base), "-U", "grader", "gradebook")
        yield f"postgresql://grader@/gradebook?host={base}"
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)
