"""Reading and editing nbgrader notebooks: graded parts, solution cells, leak checks."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


@dataclass(frozen=True)
class Part:
    """An autograded test cell: its ``grade_id`` and points."""

    grade_id: str
    points: float
    index: int


def nbgrader_meta(cell) -> dict:
    """A cell's nbgrader metadata; ``{}`` where there is none or it is not a mapping (a
    submission may hold any JSON there: nbformat does not check nbgrader's keys)."""
    metadata = cell.get("metadata")
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def _well_typed(key: str, value) -> bool:
    if key == "grade_id":
        return isinstance(value, str)
    if key in ("solution", "grade", "locked", "task"):
        return isinstance(value, bool)
    if key == "points":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return key == "schema_version" and type(value) is int


def plain_text(text) -> str:
    """``text`` as a string that can be written as UTF-8: a lone surrogate (valid in JSON,
    not in UTF-8) becomes ``?``; anything that is not a string becomes ``""``."""
    if not isinstance(text, str):
        return ""
    return text.encode("utf-8", "replace").decode("utf-8")


def clean_submission(nb):
    """A new notebook holding only what grading and feedback read from a submission:
    each cell's type, source and well-typed nbgrader keys. Saved outputs, attachments,
    other metadata and widget state are dropped (the grader makes its own outputs), text
    is made UTF-8-safe, nbgrader metadata that is not a mapping is ignored and a key of
    the wrong type is dropped -- so no malformed field of a valid notebook can crash the
    grader or reach a browser."""
    cells = []
    for cell in nb.get("cells", []):
        kind = cell.get("cell_type")
        source = plain_text(cell.get("source", ""))
        meta = {k: v for k, v in nbgrader_meta(cell).items() if _well_typed(k, v)}
        if "grade_id" in meta:
            meta["grade_id"] = plain_text(meta["grade_id"])
        metadata = {"nbgrader": meta} if meta else {}
        if kind == "code":
            cells.append(nbformat.v4.new_code_cell(source, metadata=metadata))
        elif kind == "markdown":
            cells.append(nbformat.v4.new_markdown_cell(source, metadata=metadata))
        elif kind == "raw":
            cells.append(nbformat.v4.new_raw_cell(source, metadata=metadata))
    return nbformat.v4.new_notebook(cells=cells)  # fresh cell ids, none of the student's


def graded_parts(nb) -> list[Part]:
    """The autograded test cells of a notebook, in order."""
    parts = []
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            parts.append(Part(meta["grade_id"], float(meta.get("points", 0)), i))
    return parts


def with_solution_replaced(
    notebook: str | os.PathLike,
    replacements: dict[str, str],
    out_path: str | os.PathLike,
) -> Path:
    """Copy ``notebook`` to ``out_path`` with the source of the solution cells named by
    ``grade_id`` replaced -- e.g. to build a plausible wrong submission for a test."""
    nb = nbformat.read(notebook, 4)
    missing = set(replacements)
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution") and meta.get("grade_id") in replacements:
            cell.source = replacements[meta["grade_id"]]
            missing.discard(meta["grade_id"])
    if missing:
        raise KeyError(f"no solution cell with grade_id {sorted(missing)} in {notebook}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_path)
    return out_path


def _between(source: str, begin: str, end: str) -> list[str]:
    pattern = re.escape(begin) + r"(.*?)" + re.escape(end)
    return re.findall(pattern, source, flags=re.S)


def _meaningful_lines(block: str) -> set[str]:
    """Lines of a solution or hidden test worth searching for in a release: not blank,
    not a bare comment and long enough not to match by accident."""
    lines = set()
    for line in block.splitlines():
        stripped = line.strip()
        if len(stripped) >= 12 and not stripped.startswith("#"):
            lines.add(stripped)
    return lines


def find_leaks(release_nb, source_nb) -> list[str]:
    """What of ``source_nb``'s solutions and hidden tests shows up in ``release_nb``.

    Looks for nbgrader's markers and for every meaningful line of each solution block
    and hidden-test block of the source anywhere in the release's cells (sources and
    outputs). Returns human-readable findings; an empty list means no leak.
    """
    findings = []
    release_text = []
    for cell in release_nb.cells:
        release_text.append(cell.source)
        for output in cell.get("outputs", []):
            release_text.append(str(output))
    release_text = "\n".join(release_text)
    for marker in (SOLUTION_BEGIN, SOLUTION_END, HIDDEN_BEGIN, HIDDEN_END):
        if marker in release_text:
            findings.append(f"marker {marker!r} present")
    release_lines = {line.strip() for line in release_text.splitlines()}
    secret, public = set(), set()
    for cell in source_nb.cells:
        blocks = _between(cell.source, SOLUTION_BEGIN, SOLUTION_END)
        blocks += _between(cell.source, HIDDEN_BEGIN, HIDDEN_END)
        for block in blocks:
            secret |= _meaningful_lines(block)
        outside = cell.source
        for block in blocks:
            outside = outside.replace(block, "")
        public |= _meaningful_lines(outside)
    # A line the students see anyway (an import repeated in a hidden test) is no leak.
    for line in sorted((secret - public) & release_lines):
        findings.append(f"line {line!r} leaked")
    return findings
