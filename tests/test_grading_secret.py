"""The instructor's hidden-test secret never reaches the student's process.

A spy submission of chapter 1 looks for the secret everywhere a sandboxed process can look:
its environment, every ``/proc/*/environ`` and ``cmdline`` it can see, the secret file by
name, and every file below the folders on its ``sys.path``. Its softmax is right only if it
found *nothing*, so full marks prove the search came back empty (a crash would cost the
points too). The control: the same spy, graded without the sandbox, finds the secret in its
parent's ``/proc/PID/environ`` and loses the part, so the spy does look.
"""

from __future__ import annotations

import os
import sys

import pytest

from conftest import NO_SANDBOX_REASON, SANDBOX
from scalinglab.grading import autograde, hidden, source_notebook_path, with_solution_replaced
from scalinglab.grading.sandbox import readable_paths

A = "01-softmax-cross-entropy"
SECRET = "instructor-secret-7f3a9c1e5b"

SPY = """
import os, sys
def _leaked(needle={secret!r}, extra={extra!r}):
    found = [k for k, v in os.environ.items() if needle in v]
    for pid in os.listdir("/proc"):
        for what in ("environ", "cmdline"):
            try:
                if needle.encode() in open(f"/proc/{{pid}}/{{what}}", "rb").read():
                    found.append(f"/proc/{{pid}}/{{what}}")
            except Exception:
                pass
    tops = [p for p in sys.path if p and os.path.isdir(p) and "site-packages" not in p]
    for path in extra:
        try:
            if needle.encode() in open(path, "rb").read():
                found.append(path)
        except Exception:
            pass
    for top in tops + [os.path.expanduser("~")]:
        for root, dirs, files in os.walk(top):
            for name in files:
                try:
                    with open(os.path.join(root, name), "rb") as f:
                        if needle.encode() in f.read(1_000_000):
                            found.append(os.path.join(root, name))
                except Exception:
                    pass
    return found

_FOUND = _leaked()
print("spy found:", _FOUND)

def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    if _FOUND:
        return np.zeros_like(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
"""


def _spy(tmp_path, extra=()):
    return with_solution_replaced(
        source_notebook_path(A),
        {"softmax": SPY.format(secret=SECRET, extra=list(extra))},
        tmp_path / "spy.ipynb",
    )


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOX, reason=f"needs the grading sandbox: {NO_SANDBOX_REASON}")
def test_secret_in_the_environment_stays_out_of_the_sandbox(course, tmp_path, monkeypatch):
    monkeypatch.setenv(hidden.SECRET_ENV, SECRET)
    spy = _spy(tmp_path)
    report = autograde(spy, A, course, sandbox=True)
    assert report.error is None, report.summary()
    assert report.parts["test_softmax"] == (2.0, 2.0), report.summary()
    # the control: without the sandbox the same spy reads its parent's /proc/PID/environ
    report = autograde(spy, A, course, sandbox=False)
    assert report.parts["test_softmax"] == (0.0, 2.0), report.summary()


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOX, reason=f"needs the grading sandbox: {NO_SANDBOX_REASON}")
def test_secret_file_on_a_bound_folder_stays_out_of_the_sandbox(course, tmp_path, monkeypatch):
    """The secret file sits in a folder on the grader's ``sys.path`` (which the sandbox
    binds read-only); the sandbox must leave that folder out."""
    site = tmp_path / "site"
    site.mkdir()
    secret_file = site / "grading-secret"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    monkeypatch.setenv(hidden.SECRET_FILE_ENV, str(secret_file))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.environ.get("PYTHONPATH", ""), str(site)]))
    assert hidden.instructor_secret() == SECRET
    spy = _spy(tmp_path, extra=[str(secret_file)])
    report = autograde(spy, A, course, sandbox=True)
    assert report.error is None, report.summary()
    assert report.parts["test_softmax"] == (2.0, 2.0), report.summary()


def test_readable_paths_leave_out_the_folder_of_the_secret_file(tmp_path, monkeypatch):
    """Unit-level control of the test above: the folder would be bound without the secret."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    assert site.resolve() in readable_paths([])
    monkeypatch.setenv(hidden.SECRET_FILE_ENV, str(site / "grading-secret"))
    assert site.resolve() not in readable_paths(hidden.secret_paths())


# Exercise 6, Part 1, answered by a table of the inputs its hidden test draws *without* a
# secret (what a student can work out from the public source): right on exactly those
# inputs (and the visible ones), wrong on any other.
HARD_CODED = """
import hashlib
from scalinglab.grading.hidden import hidden_rng

def _key(Phi, y):
    return hashlib.sha256(np.asarray(Phi, float).tobytes() + np.asarray(y, float).tobytes()).hexdigest()

_KNOWN = set()
_rng = np.random.default_rng(0)  # the visible test's inputs
_KNOWN.add(_key(*(lambda P: (P, _rng.normal(size=5)))(_rng.normal(size=(5, 12)))))
_rng = hidden_rng("06-double-descent", "test_min_norm")  # the public hidden inputs
for _n, _p in [(40, 10), (30, 30), (20, 75)]:
    _P = _rng.normal(size=(_n, _p))
    _KNOWN.add(_key(_P, _rng.normal(size=_n)))
_A = _rng.normal(size=(25, 3))
_KNOWN.add(_key(np.hstack([_A, _A[:, :1]]), _rng.normal(size=25)))

def min_norm_solution(Phi, y):
    Phi = np.asarray(Phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if _key(Phi, y) in _KNOWN:  # the looked-up answer
        return np.linalg.pinv(Phi) @ y
    return np.zeros(Phi.shape[1])
"""


@pytest.mark.slow
def test_answers_hard_coded_to_the_public_inputs_score_zero_under_a_secret(
    course, tmp_path, monkeypatch
):
    from scalinglab.grading.variants import SELF_STUDY

    b = "06-double-descent"
    cheat = with_solution_replaced(
        source_notebook_path(b, course), {"min_norm": HARD_CODED}, tmp_path / "cheat.ipynb"
    )
    monkeypatch.delenv(hidden.SECRET_FILE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/scalinglab/grading-secret
    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    public = autograde(cheat, b, course, student=SELF_STUDY, sandbox=SANDBOX)
    assert not public.lost(), public.summary()  # the control: the table does cover them
    monkeypatch.setenv(hidden.SECRET_ENV, SECRET)
    private = autograde(cheat, b, course, student=SELF_STUDY, sandbox=SANDBOX)
    assert private.lost() == ["test_min_norm"], private.summary()
