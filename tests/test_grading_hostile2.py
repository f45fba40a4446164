"""A hostile class, second pass (issue 19): the batch always completes, nothing from a
submission reaches a browser or the grader's terminal, memory is bounded per sandbox, and
the feedback is readable.

One batch of chapter 1's exercise is graded with ``collect_submissions`` and
``grade_submissions`` from a course copy's ``submitted/`` folder, exactly as ``scalinglab
grade`` does, into a gradebook that already holds another student's marks. Each hostile
submission's expected score is the proof that its trick failed; afterwards that row,
``solutions/`` and the other submissions are unchanged, no process or cgroup of the batch
is left, and the batch took a bounded time. The numbered comments are the issue's points.

Needs the OS sandbox (bubblewrap); the memory test also needs a memory cgroup (root), and
the browser tests a Chromium (as ``tests/test_browser.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import NO_SANDBOX_REASON, SANDBOX, gradebook_rows
from scalinglab.grading import Course, GradeReport, source_notebook_path
from scalinglab.grading.gradebook import (
    collect_submissions,
    grade_submissions,
    record,
    register_assignment,
)
from scalinglab.grading.notebooks import nbgrader_meta
from scalinglab.grading.sandbox import CGROUP_ROOT, SandboxCgroups

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SANDBOX, reason=f"needs the grading sandbox: {NO_SANDBOX_REASON}"),
]

A = "01-softmax-cross-entropy"
MARKER = "4343.5"  # `sleep 4343.5`: processes a submission tries to leave behind
TAG = "h2" + uuid.uuid4().hex[:8]  # names this module's cgroups
MEMORY = 2 * 2**30  # the batch's memory limit per sandbox
BATCH_LIMIT_S = 600  # the whole batch on a loaded 2-core machine (alone: about 3 minutes)
ROOT = Path(__file__).resolve().parents[1]

EXIT_NOW = "import os\nos._exit(0)  # ends the kernel: the cheap way to finish a submission"

# 5. active content in every place a browser could run it
PAYLOADS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned='onerror'\">",
    "[click](javascript:window.__pwned='link')",
    "<iframe srcdoc=\"<script>parent.__pwned='srcdoc'</script>\"></iframe>",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
    "$\\href{javascript:window.__pwned='tex'}{x}$",
]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def _cell(source: str, kind: str = "code", **nbgrader):
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else None
    cell = cell or nbformat.v4.new_markdown_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = nbgrader
    return cell


def _solution(course):
    return nbformat.read(source_notebook_path(A, course), 4)


def _replace(nb, grade_id: str, source: str):
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade_id") == grade_id:
            cell.source = source
            return nb
    raise KeyError(grade_id)


def _sources(course) -> dict[str, str]:
    return {
        nbgrader_meta(c)["grade_id"]: c.source
        for c in _solution(course).cells
        if nbgrader_meta(c).get("solution")
    }


def _write(path: Path, nb) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))  # (escapes a lone surrogate, as JSON may)
    return path


def _digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()


def _our_cgroups() -> list[str]:
    return sorted(str(p) for p in CGROUP_ROOT.glob(f"**/scalinglab-{TAG}-*"))


def _leftover_processes() -> list[str]:
    import psutil

    return [
        f"{p.pid}: {' '.join(p.info['cmdline'] or [])}"
        for p in psutil.process_iter(["cmdline"])
        if MARKER in " ".join(p.info["cmdline"] or [])
    ]


# --------------------------------------------------------------------------- submissions

MALFORMED = "1. a markdown cell whose nbgrader metadata is a string; a lone surrogate"
FORGED = (
    "\x1b]0;pwned\x07\x1b[2K\rmallory / 01-softmax-cross-entropy: 14 / 14\n  test_softmax 2 / 2"
)

FORGE = f"""
def softmax(z):
    raise ValueError({FORGED!r})
"""

LEAKY = """
import numpy as np
_seen = []
def cross_entropy(z, y):
    z = np.asarray(z, dtype=np.float64)
    _seen.append(int(np.asarray(y).sum()))
    if len(z) > 2:  # a hidden input: fail with an error of its choosing
        [][0]
    m = z.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(len(y)), y]))
"""

LEAK_EXIT = (
    "import os\nos._exit(7 + (_seen[-1] % 50 if _seen else 0))  # a status chosen by the data"
)

FORBIDDEN = """
from concurrent.futures import ThreadPoolExecutor
import types
import scalinglab.losses as L
def softmax(z):
    with ThreadPoolExecutor(1) as pool:  # the package's function, in another thread
        return pool.submit(L.softmax, z).result()
_code = L.cross_entropy.__code__.replace(co_firstlineno=1, co_name="mine", co_filename="<me>")
cross_entropy = types.FunctionType(
    _code, L.cross_entropy.__globals__, "cross_entropy", L.cross_entropy.__defaults__
)
"""

TYPES = {  # 11. correct answers in other legitimate types
    "softmax": """
import torch
def softmax(z):
    t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    return torch.softmax(t, dim=-1)  # a float64 tensor that requires grad
""",
    "cross_entropy": """
import numpy as np
import torch
import torch.nn.functional as F
def cross_entropy(z, y):
    return np.float32(F.cross_entropy(torch.tensor(z), torch.tensor(y)).item())  # NumPy scalar
""",
    "cross_entropy_grad": """
import numpy as np
def cross_entropy_grad(z, y):
    z = np.asarray(z, dtype=np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return (p / len(y)).astype(np.float32)  # a float32 array
""",
}

HOG = """
import os
fds = []
for i in range(12):  # 12 memfds of 255 MiB: each under the file-size limit, 3 GiB in all
    fd = os.memfd_create(f"hog{i}")
    os.write(fd, bytes(255 * 2**20))
    fds.append(fd)
"""


def _xss_notebook(course):
    nb = _solution(course)
    md = _cell("\n\n".join(PAYLOADS), "markdown")
    md.attachments = {"x.png": {"image/png": PNG}}
    code = _cell("print('hello')")
    code.outputs = [
        nbformat.v4.new_output("display_data", {"text/html": PAYLOADS[0] + PAYLOADS[1]}),
        nbformat.v4.new_output("display_data", {"application/javascript": "window.__pwned = 'js'"}),
        nbformat.v4.new_output(
            "display_data",
            {"image/png": PNG},
            metadata={"image/png": {"width": "1 onerror=window.__pwned='width'"}},
        ),
        # 7. a million colour codes (8 MiB): quadratic in nbconvert's ANSI conversion
        nbformat.v4.new_output("stream", name="stdout", text="\x1b[31mx\x1b[0m" * 500_000),
    ]
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}
    }
    nb.cells = [md, code, _cell(EXIT_NOW)] + nb.cells
    return nb


def _submissions(course, root: Path) -> dict[str, object]:
    """Writes every submission under ``root/submitted``; returns notes for the tests."""
    sub = root / "submitted"
    sol = _sources(course)

    def put(student: str, nb) -> Path:
        return _write(sub / student / A / f"{A}.ipynb", nb)

    # 1. malformed but valid nbformat: string nbgrader metadata (markdown and code), a list
    # for a grade_id, a lone surrogate; its kernel then ends at once
    nb = _solution(course)
    bad_md = _cell("a lone surrogate: \ud800 and more", "markdown")
    bad_md.metadata["nbgrader"] = "not a mapping"
    bad_code = _cell(EXIT_NOW)
    bad_code.metadata["nbgrader"] = "solution"
    listed = _cell("x = 1", grade_id=["softmax"], solution=True)
    nb.cells = [bad_md, listed, bad_code] + nb.cells
    put("a_malformed", nb)

    # 3. a link to the solution, and a student folder that is a link
    link = sub / "b_link" / A / f"{A}.ipynb"
    link.parent.mkdir(parents=True)
    link.symlink_to(source_notebook_path(A, course))
    (sub / "b_linkdir").symlink_to(course.source_dir.parent / "solutions_as_student")
    (course.source_dir.parent / "solutions_as_student" / A).mkdir(parents=True)
    shutil.copy(
        source_notebook_path(A, course), course.source_dir.parent / "solutions_as_student" / A
    )
    # a FIFO where the notebook should be
    fifo = sub / "b_fifo" / A / f"{A}.ipynb"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)

    # 7. a notebook over the size limit (the 65 MiB cell of the issue)
    nb = _solution(course)
    nb.cells.insert(0, _cell("x = '" + "a" * (17 * 2**20) + "'"))
    put("c_huge", nb)

    # 4. memory: 3 GiB of memfds against a 2 GiB sandbox; parts 1-3 keep their points
    put("d_oom", _replace(_solution(course), "entropy", sol["entropy"] + HOG))

    # 5, 7, 12. scripts in markdown and saved outputs; an 8 MiB colour flood
    path = put("e_xss", _xss_notebook(course))
    assert 8 * 2**20 < path.stat().st_size < 16 * 2**20  # big, but under the size limit

    # 6. an exception text that forges a terminal line
    nb = _replace(_solution(course), "softmax", FORGE)
    put("f_forge", _replace(nb, "cross_entropy", EXIT_NOW))

    # 8. hidden inputs steer an exception type and an exit status
    nb = _replace(_solution(course), "cross_entropy", LEAKY)
    put("g_leak", _replace(nb, "entropy", LEAK_EXIT))

    # 9. # forbid: dodged with a thread and a cloned code object
    nb = _replace(_solution(course), "softmax", FORBIDDEN)
    nb = _replace(nb, "cross_entropy", "pass")  # (defined in the softmax cell)
    put("h_forbid", _replace(nb, "entropy", EXIT_NOW))

    # 11. a full solution in other legitimate types
    nb = _solution(course)
    for gid, source in TYPES.items():
        nb = _replace(nb, gid, source)
    put("i_types", nb)

    # the last student: the full solution
    put("zed", _solution(course))


def _course_copy(tmp: Path) -> Course:
    root = tmp / "course"
    root.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", root)
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder / A, root / folder / A)
    return Course(root)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """The graded batch: ``(course, reports by student, elapsed seconds, state before)``."""
    tmp = tmp_path_factory.mktemp("hostile2")
    course = _course_copy(tmp)
    _submissions(course, course.root)
    db = course.root / "gradebook.db"
    register_assignment(course, A, db)
    full = {"test_softmax": 2, "test_cross_entropy": 2, "test_cross_entropy_grad": 2}
    full |= {"test_entropy": 1, "test_entropy_rate": 3}
    record(GradeReport(A, "alice", {k: (v, v) for k, v in full.items()}), db)
    before = {
        "alice": [r for r in gradebook_rows(db) if r[0] == "alice"],
        "solutions": _digest(course.source_dir),
        "repo_solutions": _digest(ROOT / "solutions"),
    }
    warnings: list[str] = []
    pairs = collect_submissions(course, A, warn=warnings.append)
    os.environ["SCALINGLAB_CGROUP_TAG"] = TAG
    try:
        started = time.monotonic()
        reports = grade_submissions(
            A, pairs, gradebook=db, course=course, timeout=240, cell_timeout=60,
            limits={"memory_bytes": MEMORY}, feedback_root=course.root,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        del os.environ["SCALINGLAB_CGROUP_TAG"]
    return course, {r.student: r for r in reports}, elapsed, before, warnings, pairs


def _elements(html: str) -> list[tuple[str, dict]]:
    """Every start tag of ``html`` with its attributes, as a browser's parser sees them."""
    from html.parser import HTMLParser

    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Parser().feed(html)
    return found


def _feedback(course, student) -> str:
    return (course.root / "feedback" / student / A / f"{A}.html").read_text()


def test_the_batch_completes_and_changes_nothing_else(batch):
    course, reports, elapsed, before, warnings, pairs = batch
    db = course.root / "gradebook.db"
    rows = gradebook_rows(db)
    assert [r for r in rows if r[0] == "alice"] == before["alice"]
    assert _digest(course.source_dir) == before["solutions"]
    assert _digest(ROOT / "solutions") == before["repo_solutions"]
    # the last student, a full solution, was graded and recorded
    assert reports["zed"].score == 14 and not reports["zed"].error, reports["zed"].summary()
    recorded = {s for s, _, _ in rows}
    assert {"a_malformed", "d_oom", "e_xss", "f_forge", "g_leak", "h_forbid", "zed"} <= recorded
    assert _leftover_processes() == []
    assert _our_cgroups() == []  # 4, 10: no pids or memory cgroup left
    assert elapsed < BATCH_LIMIT_S


def test_malformed_submissions_get_their_grade_and_one_line(batch):  # points 1 and 2
    course, reports, *_ = batch
    r = reports["a_malformed"]
    assert r.score == 0 and "exit status 0" in r.error, r.summary()
    assert not r.error.startswith("not graded"), r.summary()  # the submission's fault
    autograded = course.root / "autograded" / "a_malformed" / A / f"{A}.ipynb"
    nbformat.validate(nbformat.read(autograded, 4))
    assert "lone surrogate: ?" in _feedback(course, "a_malformed")


def test_links_fifos_and_huge_files_are_refused_with_one_line(batch):  # points 3 and 7
    course, reports, _, _, warnings, pairs = batch
    assert "is a symbolic link (refused)" in reports["b_link"].error
    assert "not a regular file" in reports["b_fifo"].error
    assert "over the 16 MiB limit" in reports["c_huge"].error
    assert any("b_linkdir" in w and "symbolic link" in w for w in warnings), warnings
    assert "b_linkdir" not in {s for s, _ in pairs}
    rows = gradebook_rows(course.root / "gradebook.db")
    assert not {s for s, _, _ in rows} & {"b_link", "b_fifo", "c_huge", "b_linkdir"}
    assert not (course.root / "feedback" / "b_link").exists()


def test_memory_is_bounded_per_sandbox(batch):  # point 4
    probe = SandboxCgroups(8, 2**30)
    has_memory_cgroup = probe.memory is not None
    probe.remove()
    if not has_memory_cgroup:
        pytest.skip("no memory cgroup can be created here (the fallback applies)")
    course, reports, *_ = batch
    r = reports["d_oom"]
    assert r.score == 6, r.summary()  # softmax, cross_entropy and its gradient
    assert "ran out of memory (limit 2 GiB)" in r.error, r.summary()
    assert "your code ran out of memory (limit 2 GiB)" in _feedback(course, "d_oom")


def test_terminal_gets_escaped_one_line_text(batch):  # point 6
    _, reports, *_ = batch
    r = reports["f_forge"]
    assert r.score == 0, r.summary()
    text = r.summary()
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert len(text.splitlines()) == 1 + len(r.parts) + len(r.notes) + len(r.details) + 1
    assert not any(line.startswith("mallory") for line in text.splitlines())
    assert "\\x1b]0;pwned" in text


def test_hidden_inputs_do_not_steer_the_feedback(batch):  # point 8
    course, reports, *_ = batch
    r = reports["g_leak"]
    assert set(r.parts) - set(r.lost()) == {"test_softmax", "test_cross_entropy_grad"}
    assert "exit status" in r.error  # the instructor keeps the detail
    html = _feedback(course, "g_leak")
    assert "exit status" not in html and "IndexError" not in html
    assert "in cell" not in html.split("test_softmax")[0]  # no cell name in the error line
    assert "a hidden test failed" in html
    assert "your code stopped the grader's kernel" in html


def test_forbidden_functions_are_seen_in_threads_and_clones(batch):  # point 9
    _, reports, *_ = batch
    r = reports["h_forbid"]
    assert r.parts["test_softmax"][0] == 0 and r.parts["test_cross_entropy"][0] == 0, r.summary()
    assert "scalinglab.losses.softmax" in r.messages["test_softmax"]
    assert "scalinglab.losses.cross_entropy" in r.messages["test_cross_entropy"]
    assert r.parts["test_cross_entropy_grad"] == (2.0, 2.0), r.summary()


def test_legitimate_return_types_are_judged_by_value(batch):  # point 11
    _, reports, *_ = batch
    r = reports["i_types"]
    assert r.score == 14 and not r.error, r.summary()


def test_formgrader_sees_the_batch_as_autograded(batch):  # point 13
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    course, reports, *_ = batch
    coursedir = CourseDirectory(root=str(course.root))
    coursedir.db_url = f"sqlite:///{course.root / 'gradebook.db'}"
    api = NbGraderAPI(coursedir=coursedir)
    graded = api.get_autograded_students(A)
    assert {"a_malformed", "e_xss", "zed"} <= graded, graded
    for student in ("zed", "e_xss"):
        assert (course.root / "autograded" / student / A / "timestamp.txt").is_file()
        assert (course.root / "feedback" / student / A / "timestamp.txt").is_file()


def test_feedback_holds_no_active_content(batch):  # points 5 and 7 (without a browser)
    course, reports, *_ = batch
    html = _feedback(course, "e_xss")
    tags = _elements(html)
    scripts = [attrs for tag, attrs in tags if tag == "script"]
    assert len(scripts) == 2 and all("src" not in a for a in scripts)  # MathJax: config, code
    for tag, attrs in tags:
        assert tag not in ("iframe", "svg", "img", "object", "embed"), (tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, attrs)
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, attrs)
    assert "window.__pwned" in html  # the payloads are there, as text
    autograded = nbformat.read(course.root / "autograded" / "e_xss" / A / f"{A}.ipynb", 4)
    assert "widgets" not in autograded.metadata
    for cell in autograded.cells:
        assert not cell.get("attachments")
        for output in cell.get("outputs", []):
            assert output.output_type == "stream"  # the grader's own text only
            assert "\x1b" not in output.text


# --------------------------------------------------------------------------- the browser


def _chromium():
    from test_browser import _chromium as find

    return find()


@pytest.fixture(scope="module")
def page():
    playwright = pytest.importorskip("playwright.sync_api")
    path = _chromium()
    if path is None:
        pytest.skip("no Chromium")
    from test_browser import CHROMIUM_ARGS

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        context = browser.new_context()
        requests: list[str] = []

        def offline(route):  # the files themselves load; anything else is refused
            if route.request.url.startswith("file:"):
                return route.continue_()
            requests.append(route.request.url)
            return route.abort()

        context.route("**/*", offline)
        page = context.new_page()
        page.requests = requests
        yield page
        browser.close()


def _open(page, path: Path) -> None:
    page.requests.clear()
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(1500)  # MathJax typesets after load; onerror fires on decode


def test_no_payload_runs_in_the_feedback_or_formgraders_view(batch, page, tmp_path):  # 5
    from nbconvert import HTMLExporter

    course, *_ = batch
    _open(page, course.root / "feedback" / "e_xss" / A / f"{A}.html")
    assert page.evaluate("window.__pwned") is None
    for link in page.locator("a").all():
        assert not (link.get_attribute("href") or "").lower().startswith("javascript")
    # formgrader renders the autograded notebook with nbconvert's HTML exporter, unsanitised
    nb = nbformat.read(course.root / "autograded" / "e_xss" / A / f"{A}.ipynb", 4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    view = tmp_path / "formgrader.html"
    view.write_text(body)
    _open(page, view)
    assert page.evaluate("window.__pwned") is None


def test_feedback_is_readable_with_math_offline(batch, page):  # point 12
    course, *_ = batch
    _open(page, course.root / "feedback" / "zed" / A / f"{A}.html")
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=30000)
    text = page.inner_text("body")
    # the course's text, without the student's own written answers: those are shown as
    # escaped plain text that MathJax ignores (a submission's markdown is never rendered)
    course_text = page.evaluate(
        """() => { const body = document.body.cloneNode(true);
                   body.querySelectorAll('.mathjax_ignore').forEach(e => e.remove());
                   return body.innerText; }"""
    )
    assert "<p>" not in text and "<h2" not in text and "<table" not in text
    assert page.locator("h1, h2").count() > 0
    assert page.locator("mjx-container").count() > 5
    assert page.locator("mjx-merror").count() == 0  # no TeX error
    raw = re.findall(r"\$[^$\n]{1,40}\$", course_text)  # no formula left as raw TeX
    assert not raw, raw[:5]
    assert page.requests == []  # nothing requested from the network
    assert "zed / 01-softmax-cross-entropy: 14 / 14 points" in text


# --------------------------------------------------------------------------- without the batch


WIRE_PROBE = """
import os, resource, sys, time
from scalinglab.grading.student import StudentProcess, StudentDied
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with StudentProcess(True) as s:
    s.wait_ready()
    base = peak()
    # six stale 48 MiB frames now, then (while the next request waits) a reply with its id
    # that is 30 MiB of nested empty lists
    cell = '''
import os, sys, threading, time
fd = int(sys.argv[2])
body = b"[" * 10 + b" " * (48 * 2**20) + b"]" * 10
for i in range(6):
    os.write(fd, len(body).to_bytes(8, "big") + (999).to_bytes(8, "big") + body)
nested = b"[" + b"[]," * (10 * 2**20) + b"[]]"
msg = b'{"id": 2, "ok": true, "value": ' + nested + b"}"
def later():
    time.sleep(2)
    os.write(fd, len(msg).to_bytes(8, "big") + (2).to_bytes(8, "big") + msg)
threading.Thread(target=later).start()
'''
    r1 = s.request({"op": "run", "source": cell}, 120)
    try:
        s.request({"op": "run", "source": "import time; time.sleep(20)"}, 60)
        second = "answered"
    except StudentDied as exc:
        second = str(exc)
    print(r1.get("ok"), "|", second, "|", round(peak() - base))
"""


def test_the_graders_memory_is_bounded_when_parsing_replies(tmp_path):  # point 4
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", WIRE_PROBE], capture_output=True, text=True, timeout=300, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    ok, second, growth = (part.strip() for part in out.stdout.strip().split("|"))
    assert ok == "True"  # the stale frames were skipped: the cell's own reply came through
    assert "more than 250000 nested values" in second, second
    assert float(growth) < 200, f"the grader grew by {growth} MB"  # was 2.3-2.9 GB


def test_validate_names_the_failing_cell_and_the_values(course, tmp_path):  # point 14
    from scalinglab.grading.check import check_notebook, format_results

    sol = _sources(course)
    broken = _replace(_solution(course), "softmax", "def softmax(z):\n    return z +")
    results = check_notebook(_write(tmp_path / "syntax.ipynb", broken))
    first = results[0]
    assert "cell 'softmax' raised SyntaxError" in first.message, first.message
    assert "NameError" not in format_results(results)

    nb = _replace(_solution(course), "softmax", "def softmax(z):\n    return z")
    nb = _replace(nb, "entropy", sol["entropy"] + "\nraise ZeroDivisionError('in a later cell')")
    results = {r.grade_id: r for r in check_notebook(_write(tmp_path / "later.ipynb", nb))}
    message = results["test_softmax"].message
    assert "assert" in message and "array(" in message, message  # the line and the values
    assert results["test_cross_entropy"].passed
    assert "cell 'entropy' raised ZeroDivisionError" in results["test_entropy"].message
    assert not results["test_entropy_rate"].passed  # "Run all" stops at the error

    stub = nbformat.read(course.release_dir / A / f"{A}.ipynb", 4)
    results = check_notebook(_write(tmp_path / "stub.ipynb", stub))
    assert results[0].status == "not attempted"
    assert "NotImplementedError: " not in results[0].message


def test_start_places_work_at_the_course_root(course, tmp_path, monkeypatch, capsys):  # 14
    from scalinglab.cli import main

    root = _course_copy(tmp_path).root
    (root / "work").mkdir()
    monkeypatch.chdir(root / "work")
    monkeypatch.setattr(sys, "argv", [str(ROOT / ".venv" / "bin" / "scalinglab")])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the course's venv is not active
    assert main(["start", A]) == 0
    assert (root / "work" / A / f"{A}.ipynb").is_file()
    assert not (root / "work" / "work").exists()
    out = capsys.readouterr().out
    assert "scalinglab validate" in out and "bin/scalinglab validate" in out, out


def test_terminal_text_is_one_escaped_line():  # point 6, 14
    from scalinglab.grading.autograde import terminal_text

    assert terminal_text("a\x1b[2K\r\nb\u202ec") == "a\\x1b[2K\\r\\nb\\u202ec"
    cut = terminal_text("word " * 100, 42)
    assert cut.endswith("word ...") and len(cut) <= 46


def test_reports_sort_and_feedback_never_stops_a_batch(course, tmp_path):  # points 1, 14
    from scalinglab.grading.gradebook import _write_feedback

    report = GradeReport(A, "x", {"test_softmax": (0.0, 2.0)})
    _write_feedback(report, tmp_path / "missing.ipynb", course, tmp_path, None)
    assert report.details and report.details[0].startswith("no feedback written")


def test_wire_converts_tensors_and_scalars_for_the_tests():  # point 11
    import numpy as np
    import torch

    from scalinglab.grading import wire

    value = {
        "t": torch.ones(3, dtype=torch.float64, requires_grad=True) * 2,
        "s": np.float32(0.5),
        "z": np.array(3.0),
        "t0": torch.tensor(1.5),
        "a": np.arange(3, dtype=np.float32),
        "l": [torch.zeros(2)],
    }
    got = wire.decode_for_tests(json.loads(json.dumps(wire.encode(value))))
    assert type(got["t"]) is np.ndarray and got["t"].dtype == np.float64
    assert np.all(got["t"] == 2)
    assert type(got["s"]) is float and got["s"] == 0.5
    assert type(got["z"]) is float and type(got["t0"]) is float
    assert got["a"].dtype == np.float32 and type(got["l"][0]) is np.ndarray


def test_cgroups_are_removed_once_their_processes_are_gone():  # point 10
    groups = SandboxCgroups(16, 2**30)
    if not groups.paths:
        pytest.skip("no cgroup can be created here")
    proc = subprocess.Popen(["sleep", MARKER], preexec_fn=groups.join, stdout=subprocess.DEVNULL)
    time.sleep(0.2)
    groups.remove()  # kills what is left, waits, removes
    proc.wait(timeout=10)
    assert all(not p.exists() for p in groups.paths)


def test_a_killed_worker_leaves_no_cgroup(course, tmp_path, monkeypatch):  # points 4, 10
    """Past the wall clock the grader kills the worker, which then cannot remove its
    sandbox's cgroups: the grader removes them (found: an empty memory cgroup left)."""
    nb = _solution(course)
    stall = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(10**6)"
    nb.cells.insert(0, _cell(stall))
    path = _write(tmp_path / "stall.ipynb", nb)
    monkeypatch.setenv("SCALINGLAB_CGROUP_TAG", TAG)
    started = time.monotonic()
    (report,) = grade_submissions(
        A, [("stall", path)], gradebook=tmp_path / "gb.db", course=course,
        timeout=20, cell_timeout=1000,
    )  # fmt: skip
    assert "timed out" in report.error and report.score == 0, report.summary()
    assert time.monotonic() - started < 20 + 60  # the limit, the kill, registering
    assert _our_cgroups() == []
