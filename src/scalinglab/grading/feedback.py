"""What a graded student gets back, and what the instructor keeps.

For each graded submission :func:`write_feedback` writes, in nbgrader's layout under the
course (or another root):

- ``autograded/<student>/<assignment>/<notebook>.ipynb``: the submission with the source's
  test cells (hidden tests included) and each part's verdict as the cell's output -- for
  the instructor and formgrader;
- ``feedback/<student>/<assignment>/<notebook>.html``: the submission with the *release's*
  test cells (visible tests only), each followed by its score and, for a failed part, the
  reason in a fixed vocabulary (the failing visible line, "a hidden test failed"). The
  hidden tests' source never appears in it: their lines are not in the release, and their
  messages and printed output never reach the report (:mod:`scalinglab.grading.checker`).

Both files are built so that nothing of the submission can run in a browser, whatever
renders them (the student's browser, formgrader in the instructor's Jupyter): they start
from :func:`~scalinglab.grading.notebooks.clean_submission` (no saved outputs, attachments,
widget state or metadata of the student's), the only outputs are the grader's own plain
text, the course's markdown is kept as written, and any other markdown -- the student's --
is shown as escaped plain text in an element MathJax ignores. Very long cells are cut, so
the time to render is bounded by the size of the notebook. The HTML carries its own
MathJax (the ``sphinx-mathjax-offline`` copy, self-contained SVG output) and loads nothing
from the network: formulas render offline.
"""

from __future__ import annotations

import html
import os
import re
from functools import lru_cache
from pathlib import Path

import nbformat

from scalinglab.grading.autograde import GradeReport, read_submission
from scalinglab.grading.course import Course, release_notebook_path, source_notebook_path
from scalinglab.grading.notebooks import graded_parts, nbgrader_meta

MAX_CELL_CHARS = 20_000  # of one student cell shown in feedback
MAX_SHOWN_CHARS = 1_000_000  # of the student's cells in one feedback file, all together
MAX_OUTPUT_CHARS = 4_000  # of a verdict's text
# control characters (ANSI escapes and the like) are dropped from every output: they mean
# nothing in a browser, and nbconvert's ANSI-to-HTML conversion is quadratic in them
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    text = _CONTROL.sub("", str(text))
    return text if len(text) <= limit else text[:limit] + " [...]"


def _verdict_output(report: GradeReport, grade_id: str, for_student: bool):
    score, points = report.parts.get(grade_id, (0.0, 0.0))
    mark = "passed" if score >= points else "failed"
    lines = [f"{grade_id}: {mark}, {score:g} / {points:g} points"]
    reasons = report.public if for_student else report.messages
    if score < points and reasons.get(grade_id):
        lines.append(reasons[grade_id])
        if for_student:
            lines.append("(run the visible tests in your notebook for the full message)")
    text = _plain("\n".join(lines)) + "\n"
    outputs = []
    if report.outputs.get(grade_id):
        outputs.append(
            nbformat.v4.new_output("stream", name="stdout", text=_plain(report.outputs[grade_id]))
        )
    outputs.append(
        nbformat.v4.new_output("stream", name="stdout" if mark == "passed" else "stderr", text=text)
    )
    return outputs


def inert_markdown(text: str) -> str:
    """Markdown that shows ``text`` as plain text: HTML-escaped on one line (so no markdown,
    link, image or tag is interpreted) in an element MathJax skips."""
    escaped = html.escape(text, quote=True).replace("\n", "<br>")
    return f'<div class="tex2jax_ignore mathjax_ignore">{escaped}</div>'


def _cut(text: str, budget: list[int]) -> str:
    """``text`` within the per-cell limit and what is left of the file's ``budget``."""
    limit = min(MAX_CELL_CHARS, max(budget[0], 0))
    budget[0] -= min(len(text), limit)
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n# [... {len(text) - limit} more characters not shown]"


def _graded_copy(submission, trusted, report: GradeReport, for_student: bool):
    """The clean ``submission`` with each graded test cell replaced by ``trusted``'s
    version (and missing ones appended), the verdicts as outputs, the course's markdown
    as written and every other markdown or raw cell as inert text."""
    tests_by_id = {part.grade_id: trusted.cells[part.index] for part in graded_parts(trusted)}
    course_markdown = {c.source for c in trusted.cells if c.cell_type == "markdown"}
    budget = [MAX_SHOWN_CHARS]
    seen = set()
    cells = []
    for cell in submission.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if cell.cell_type == "code" and gid in tests_by_id:
            if gid in seen:
                continue  # a duplicated test cell is graded once
            seen.add(gid)
            cell = nbformat.v4.new_code_cell(
                tests_by_id[gid].source, metadata={"nbgrader": nbgrader_meta(tests_by_id[gid])}
            )
            cell.outputs = _verdict_output(report, gid, for_student)
        elif cell.cell_type == "code":
            cell = nbformat.v4.new_code_cell(_cut(cell.source, budget), metadata=cell.metadata)
        elif cell.cell_type == "markdown" and cell.source in course_markdown:
            cell = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata)
        else:  # the student's markdown (or a raw cell): text, never markup
            cell = nbformat.v4.new_markdown_cell(inert_markdown(_cut(cell.source, budget)))
        cells.append(cell)
    for gid, test in tests_by_id.items():
        if gid not in seen:
            cell = nbformat.v4.new_code_cell(
                test.source, metadata={"nbgrader": nbgrader_meta(test)}
            )
            cell.outputs = _verdict_output(report, gid, for_student)
            cells.append(cell)
    summary = [
        f"**{html.escape(report.student)} / {report.assignment}: "
        f"{report.score:g} / {report.max_score:g} points**"
    ]
    error = report.public_error if for_student else report.error
    if error:
        summary.append(inert_markdown(f"Grading stopped early: {_plain(error)}"))
    notes = report.notes if for_student else report.notes + report.details
    summary += [inert_markdown(f"Note: {_plain(note)}") for note in notes]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("\n\n".join(summary))])
    nb.cells += cells
    nb.metadata = nbformat.from_dict(
        {k: v for k, v in trusted.metadata.items() if k in ("kernelspec", "language_info")}
    )
    return nb


@lru_cache(maxsize=1)
def _mathjax_script() -> str:
    """MathJax 3 (SVG output: fonts inside the script, no other file needed) from the
    ``sphinx-mathjax-offline`` distribution, configured like the book's pages."""
    from importlib.metadata import distribution

    js = Path(
        distribution("sphinx-mathjax-offline").locate_file(
            "sphinx-mathjax-offline/static/mathjax/tex-svg.js"
        )
    ).read_text(encoding="utf-8")
    config = (
        "window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']],"
        " displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true},"
        " options: {ignoreHtmlClass: 'tex2jax_ignore|mathjax_ignore'}};"
    )
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.I)  # inline: nothing may end it early
    return f"<script>{config}</script>\n<script>{js}</script>"


# any script of the template that loads from the network (require.js, mermaid's loader)
_REMOTE_SCRIPT = re.compile(r"<script\b(?:(?!</script>).)*?https?://.*?</script>", re.I | re.S)
_MATHJAX_BLOCK = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S | re.I
)


def feedback_html(notebook) -> str:
    """``notebook`` (made by :func:`_graded_copy`: nothing active in it) as a standalone
    HTML page: nbconvert's lab template without its scripts from a CDN (require.js,
    MathJax 2, mermaid's loader), with the offline MathJax instead."""
    from nbconvert import HTMLExporter

    # sanitize_html=False: every markdown cell is the course's own or escaped text, every
    # output the grader's plain text; nbconvert's sanitiser would only show the course's
    # markdown as literal <p> and <table> tags (jupyter/nbconvert#2016)
    body, _ = HTMLExporter(template_name="lab", sanitize_html=False).from_notebook_node(notebook)
    body = _MATHJAX_BLOCK.sub("", body)
    body = _REMOTE_SCRIPT.sub("", body)
    return body.replace("</head>", _mathjax_script() + "\n</head>", 1)


def write_feedback(
    report: GradeReport,
    submission: str | os.PathLike,
    course: Course,
    root: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write the autograded notebook and the student's HTML feedback; return their paths.
    Raises :class:`~scalinglab.grading.autograde.Ungradable` if ``submission`` cannot be
    read (a link, too large, not a notebook)."""
    root = Path(root) if root else course.root
    source = source_notebook_path(report.assignment, course)
    release = release_notebook_path(report.assignment, course)
    nb = read_submission(submission)
    name = source.name
    autograded = root / "autograded" / report.student / report.assignment / name
    autograded.parent.mkdir(parents=True, exist_ok=True)
    full = _graded_copy(nb, nbformat.read(source, 4), report, for_student=False)
    nbformat.write(full, autograded)
    feedback_nb = _graded_copy(nb, nbformat.read(release, 4), report, for_student=True)
    feedback = root / "feedback" / report.student / report.assignment / f"{source.stem}.html"
    feedback.parent.mkdir(parents=True, exist_ok=True)
    feedback.write_text(feedback_html(feedback_nb), encoding="utf-8")
    return autograded, feedback
