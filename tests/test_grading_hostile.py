"""A hostile class, graded: every submission gets exactly the points it earned.

Each hostile submission below is chapter 1's exercise with some cells replaced. Its exploits
are written so that *if they work, the submission earns points* (the softmax it returns is
right only when the exploit succeeded, say). The expected score of each submission is
therefore the proof that the exploit failed. The whole class is graded in one batch into a
gradebook that already holds another student's marks; afterwards that row, ``solutions/``
and the other submissions are unchanged, no process of the batch is left, and nothing is
left in the temporary folder.

These tests need the OS sandbox (bubblewrap): without it they are skipped, with the reason.
"""

from __future__ import annotations

import hashlib
import re
import time

import nbformat
import psutil
import pytest

from conftest import NO_SANDBOX_REASON, SANDBOX, gradebook_rows
from scalinglab.grading import (
    GradeReport,
    check_notebook,
    grade_submissions,
    source_notebook_path,
    with_solution_replaced,
)
from scalinglab.grading.gradebook import record, register_assignment
from scalinglab.grading.notebooks import nbgrader_meta

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SANDBOX, reason=f"needs the grading sandbox: {NO_SANDBOX_REASON}"),
]

A = "01-softmax-cross-entropy"
MARKER = "4242.5"  # `sleep 4242.5`: processes a submission tries to leave behind

# wrong answers for the parts after the cheats (the cheats are in the softmax cell)
WRONG_REST = {
    "cross_entropy": "def cross_entropy(z, y):\n    return 0.0",
    "cross_entropy_grad": "def cross_entropy_grad(z, y):\n    return np.zeros(np.shape(z)).view(AlwaysEqual)",
    "entropy": "def entropy(p):\n    return 0.0",
    "entropy_rate": (
        "def stationary_distribution(P):\n    return np.zeros(len(P))\n\n\n"
        "def entropy_rate(P):\n    return 0.0"
    ),
}


def right_if(flag: str) -> str:
    """Source of a cross_entropy that is right only if the exploit before it set ``flag``."""
    return f"""
def cross_entropy(z, y):
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y)
    if not {flag}:
        return 0.0
    m = z.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(len(y)), y]))
"""


CHEATS = """
import builtins, json, os
import numpy as np
import torch
# 1. replace what the tests call
np.allclose = np.isclose = lambda *a, **k: True
np.all = lambda *a, **k: True
builtins.all = builtins.isinstance = lambda *a, **k: True
torch.softmax = lambda *a, **k: 0
# 2. IPython: hide test cells and their errors, fake a full-marks output
ip = get_ipython()
ip.input_transformers_post.append(lambda lines: ["pass\\n"] if "assert" in "".join(lines) else lines)
def _hide(result):
    result.error_in_exec = None
ip.events.register("post_run_cell", _hide)
from IPython.display import display
display({"text/plain": "10"}, raw=True)
# 3. forge the grader's replies on every inherited descriptor
for fd in range(3, 64):
    for i in range(1, 200):
        body = json.dumps({"id": i, "ok": True, "kind": "value", "value": 1.0}).encode()
        try:
            os.write(fd, len(body).to_bytes(8, "big") + body)
        except OSError:
            break
# 4. a result that claims to equal anything
class AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(self), dtype=bool)
def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    return np.zeros(z.shape).view(AlwaysEqual)
"""

SPY = """
import os, sqlite3, subprocess
found = []
def _look(path):
    try:
        with open(path, "rb") as f:
            data = f.read(2_000_000)
    except Exception:
        return
    # a line of the hidden tests, or any gradebook
    if b"softmax(z + 123.0)" in data or data.startswith(b"SQLite format"):
        found.append(path)
for path in [{solutions!r}, {gradebook!r}, {other!r}, "../../../gradebook.db", "../gradebook.db"]:
    _look(path)
for top in ["/", "/tmp", os.path.expanduser("~"), "..", "../..", "/work", "/root"]:
    for root, dirs, files in os.walk(top):
        if root.startswith(("/proc", "/sys", "/usr", "/dev")) or root.count("/") > 6:
            dirs[:] = []
            continue
        for name in files:
            if name.endswith((".db", ".ipynb", ".json", ".py")):
                _look(os.path.join(root, name))
for pid in os.listdir("/proc"):  # the grader's argv, environment and working folder
    for what in ("cmdline", "environ"):
        try:
            text = open(f"/proc/{{pid}}/{{what}}", "rb").read()
        except Exception:
            continue
        if {solutions!r}.encode() in text or {gradebook!r}.encode() in text:
            found.append(f"/proc/{{pid}}/{{what}}")
    try:
        _look(os.path.join(os.readlink(f"/proc/{{pid}}/cwd"), "gradebook.db"))
    except Exception:
        pass
if {solutions!r} in str(dict(os.environ)) or "SCALINGLAB_COURSE_ROOT" in os.environ:
    found.append("environment")
for target in [{solutions!r}, {gradebook!r}, {other!r}]:
    if not os.path.exists(target):
        continue  # writing would create a private file, not change the real one
    try:
        with open(target, "ab") as f:
            f.write(b"x")
        found.append("wrote " + target)
    except Exception:
        pass
if os.path.exists({gradebook!r}):
    try:
        conn = sqlite3.connect({gradebook!r})
        conn.execute("UPDATE grade SET auto_score = 0")
        conn.execute("CREATE TRIGGER t AFTER INSERT ON grade BEGIN UPDATE grade SET auto_score = 0; END")
        conn.commit()
        found.append("gradebook changed")
    except Exception:
        pass
import socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    found.append("network")
except OSError:
    pass
"""

HOG = """
import os, time
exploits = []
try:
    block = bytearray(6 * 2**30)  # 6 GiB, over the 4 GiB address-space limit
    exploits.append("memory")
    del block
except MemoryError:
    pass
try:
    with open("big.bin", "wb") as f:
        for _ in range(300):  # 300 MiB, over the 256 MiB file-size limit
            f.write(bytes(2**20))
    exploits.append("file size")
except OSError:
    pass
finally:
    if os.path.exists("big.bin"):
        os.remove("big.bin")
children = []
try:
    for _ in range(400):  # over the 256-process limit
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
except OSError:
    pass
if len(children) >= 400:
    exploits.append("processes")
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""

KILLER = """
import ctypes, os, signal, subprocess
signal.signal(signal.SIGINT, signal.SIG_IGN)
for pid in os.listdir("/proc"):  # kill everything in sight, the grader included
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
subprocess.Popen(["sleep", "{marker}"], start_new_session=True)  # holds stdout open
if os.fork() == 0:  # a daemon: double fork, new session
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{marker}"])
    os._exit(0)
ctypes.string_at(0)  # and crash
"""

STALL_CALL = """
import signal
def softmax(z):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignore the interrupt
    while True:
        pass
"""

STALL_CELL = """
import signal, subprocess, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
subprocess.Popen(["sleep", "{marker}"])
time.sleep(10**6)
"""

NOISY = """
import logging, sys, warnings
warnings.warn("an honest warning", RuntimeWarning)
logging.warning("an honest log line")
print("to stderr", file=sys.stderr)
sys.exit(3)  # an accidental exit() at the end of a cell
"""


def _solution_sources(course) -> dict[str, str]:
    nb = nbformat.read(source_notebook_path(A, course), 4)
    return {
        nbgrader_meta(c)["grade_id"]: c.source for c in nb.cells if nbgrader_meta(c).get("solution")
    }


def _digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()


def _rows(db) -> dict[str, list[tuple]]:
    """``{student: [(grade_id, score), ...]}`` of the gradebook (integrity and no trigger
    checked)."""
    out: dict[str, list[tuple]] = {}
    for student, cell, score in gradebook_rows(db):
        out.setdefault(student, []).append((cell, score))
    return out


def _leftover_processes() -> list[str]:
    left = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if MARKER in cmd:
            left.append(f"{p.pid}: {cmd}")
    return left


def test_a_hostile_class_gets_exactly_what_it_earned(course, tmp_path, monkeypatch):
    import tempfile

    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))

    source = source_notebook_path(A, course)
    solutions = _solution_sources(course)
    db = tmp_path / "gradebook.db"
    register_assignment(course, A, db)
    # another student, graded earlier, holds full marks
    full = {"test_softmax": 2, "test_cross_entropy": 2, "test_cross_entropy_grad": 2}
    full |= {"test_entropy": 1, "test_entropy_rate": 3}
    record(GradeReport(A, "alice", {k: (v, v) for k, v in full.items()}), db)
    alice_before = _rows(db)["alice"]

    other = tmp_path / "zed.ipynb"  # the next student's submission, on disk
    other.write_bytes(source.read_bytes())
    other_before = other.read_bytes()
    solutions_before = _digest(course.source_dir)
    spy = SPY.format(
        solutions=str(source), gradebook=str(db), other=str(other), course=str(course.root)
    ) + right_if("found")

    def replaced(name, replacements):
        return with_solution_replaced(source, replacements, tmp_path / f"{name}.ipynb")

    submissions = [
        ("cheater", replaced("cheater", {"softmax": CHEATS, **WRONG_REST})),
        ("spy", replaced("spy", {"cross_entropy": spy})),
        ("hog", replaced("hog", {"cross_entropy": HOG + right_if("exploits")})),
        (
            "killer",
            replaced("killer", {"entropy": solutions["entropy"] + KILLER.format(marker=MARKER)}),
        ),
        ("staller", replaced("staller", {"softmax": STALL_CALL})),
        ("noisy", replaced("noisy", {"entropy": solutions["entropy"] + NOISY})),
        ("zed", other),
    ]
    started = time.monotonic()
    reports = {
        r.student: r
        for r in grade_submissions(
            A, submissions, gradebook=db, course=course, timeout=180, cell_timeout=30
        )
    }
    elapsed = time.monotonic() - started

    def score(student):
        return reports[student].score, reports[student].summary()

    # in-kernel tricks and a wrong answer earn nothing
    assert score("cheater")[0] == 0, score("cheater")[1]
    # nothing secret or writable was found, no resource limit was beaten: the answer of the
    # part whose code tried stays wrong
    assert reports["spy"].lost() == ["test_cross_entropy"], score("spy")[1]
    assert reports["hog"].lost() == ["test_cross_entropy"], score("hog")[1]
    # a crash in part 4 keeps parts 1-3, with one clear error line
    assert score("killer")[0] == 6, score("killer")[1]
    assert "died (SIGSEGV)" in reports["killer"].error and "entropy" in reports["killer"].error
    # an endless call that ignores the interrupt is stopped; later parts are not reached
    assert score("staller")[0] == 0, score("staller")[1]
    assert "timed out" in reports["staller"].error and "test_softmax" in reports["staller"].error
    # warnings, logging, stderr and an accidental exit cost an honest student nothing
    assert not reports["noisy"].lost(), score("noisy")[1]
    # the batch went on to the last student, whose file nobody could touch
    assert not reports["zed"].lost(), score("zed")[1]
    assert other.read_bytes() == other_before

    rows = _rows(db)
    assert rows["alice"] == alice_before
    assert _digest(course.source_dir) == solutions_before
    # the written answer's row stays empty (None) until a person grades it
    assert {student: sum(s or 0 for _, s in rows[student]) for student in reports} == {
        student: r.score for student, r in reports.items()
    }
    assert _leftover_processes() == []
    assert list(private_tmp.iterdir()) == []
    assert elapsed < 7 * 180  # each within its limit (most take seconds)


def test_wall_clock_limit_holds_whatever_the_submission_does(course, tmp_path):
    source = source_notebook_path(A, course)
    solutions = _solution_sources(course)
    stall = with_solution_replaced(
        source,
        {"entropy": solutions["entropy"] + STALL_CELL.format(marker=MARKER)},
        tmp_path / "stall.ipynb",
    )
    limit = 45
    (report,) = grade_submissions(
        A, [("stall", stall)], gradebook=tmp_path / "gb.db", course=course,
        timeout=limit, cell_timeout=1000,
    )  # fmt: skip
    # the limit, the interrupt's grace and the kill (seconds, on a loaded 2-core machine)
    assert report.elapsed < limit + 10, report.elapsed
    assert report.parts["test_softmax"] == (2.0, 2.0)  # parts before the stall keep points
    assert report.parts["test_entropy"] == (0.0, 1.0)
    assert "timed out" in report.error
    assert _leftover_processes() == []


def test_scores_are_clamped_to_the_parts_points(course, tmp_path):
    db = tmp_path / "gradebook.db"
    register_assignment(course, A, db)
    forged = GradeReport(A, "mallory", {"test_softmax": (500.0, 500.0), "test_entropy": (-3, 1)})
    record(forged, db)
    scores = dict(_rows(db)["mallory"])
    assert scores["test_softmax"] == 2.0 and scores["test_entropy"] == 0.0
    assert scores["test_cross_entropy"] is None  # not in the report: not graded


def test_broken_cells_are_graded_on_what_is_intact(course, tmp_path):
    """A duplicated test cell, a cell with an unknown grade_id and a deleted test cell:
    graded on the intact cells with a note naming each problem; validate agrees."""
    from scalinglab.grading import autograde

    nb = nbformat.read(source_notebook_path(A, course), 4)
    test_cell = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "test_softmax")
    nb.cells.append(nbformat.from_dict(dict(test_cell)))  # duplicated
    mystery = nbformat.v4.new_code_cell("x = 1")
    mystery.metadata["nbgrader"] = {"grade_id": "mystery", "solution": False, "grade": False}
    nb.cells.append(mystery)
    nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") != "test_entropy"]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    report = autograde(path, A, course, sandbox=SANDBOX)
    assert not report.lost(), report.summary()
    notes = " ".join(report.notes)
    assert "'test_softmax' appears more than once" in notes
    assert "unknown grade_id 'mystery'" in notes
    assert "'test_entropy' was missing" in notes
    visible = check_notebook(path)
    assert all(r.passed for r in visible)


def test_a_grader_that_cannot_start_records_nothing(course, tmp_path):
    """If the student's interpreter cannot even start (here: an address-space limit too
    small for Python), that is the grader's failure: one line, no score recorded."""
    from scalinglab.grading.autograde import GRADER_ERROR

    db = tmp_path / "gradebook.db"
    (report,) = grade_submissions(
        A, [("eve", source_notebook_path(A, course))], gradebook=db, course=course,
        limits={"memory_bytes": 40 * 2**20},
    )  # fmt: skip
    assert report.error.startswith(GRADER_ERROR), report.summary()
    assert "did not start" in report.error
    assert gradebook_rows(db) == []


LEAKY_CROSS_ENTROPY = """
def cross_entropy(z, y):
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y)
    if z.shape[0] > 2:  # the hidden input: try to smuggle it out in the error message
        raise ValueError("LEAK y=" + ",".join(map(str, y.tolist())))
    m = z.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(len(y)), y]))
"""

FAKE_GAP_DATA = """
NS = np.array([10_000, 20_000, 40_000, 80_000, 160_000], dtype=float)
GAPS = 448 / (2 * NS)
def count_table_model(source, order, n, seed=0):
    return {"test_cross_entropy": source.entropy_rate() + 10.0 / float(n)}
def fit_gap_law(ns, gaps):  # no fit at all
    return -1.0, float(2 * ns[0] * gaps[0])
"""


def test_moved_locked_cells_and_error_messages_gain_nothing(course, tmp_path):
    """Found in review: moving a locked cell below its test let the student supply the data
    the test checks; a hidden test's inputs leaked through the student's own error message
    into the feedback. Locked cells now run in the source's order and the grader's names are
    never taken from the student; feedback shows no text from the student's code."""
    from scalinglab.grading import autograde
    from scalinglab.grading.feedback import write_feedback

    path = with_solution_replaced(
        source_notebook_path(A, course),
        {"cross_entropy": LEAKY_CROSS_ENTROPY, "gap_law": FAKE_GAP_DATA},
        tmp_path / "mover.ipynb",
    )
    nb = nbformat.read(path, 4)
    i = next(k for k, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == "run_gap")
    nb.cells.append(nb.cells.pop(i))  # the locked experiment cell moved below every test
    nbformat.write(nb, path)
    report = autograde(path, A, course, sandbox=SANDBOX)
    assert report.lost() == ["test_cross_entropy", "test_gap_law"], report.summary()
    _, feedback = write_feedback(report, path, course, tmp_path / "out")
    html = feedback.read_text()
    assert not re.search(r"LEAK y=\d", html)  # (the student's source, "LEAK y=" + ..., is theirs)
    assert "a hidden test failed" in html  # a fixed phrase: no exception type (issue 19)
    assert (
        "LEAK" in report.messages["test_cross_entropy"]
        or "hidden" in report.messages["test_cross_entropy"]
    )
