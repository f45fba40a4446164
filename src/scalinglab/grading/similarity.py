"""Similarity report: every submission's solution cells against every other's and against
the public solution, for the instructor to read. It is evidence to judge, not a penalty.

The comparison is `copydetect <https://github.com/blingenf/copydetect>`_'s: each file is
tokenised (names and literals normalised, so renaming variables changes nothing),
fingerprinted by winnowing k-grams (Schleimer, Wilkerson & Aiken 2003, "Winnowing: local
algorithms for document fingerprinting", the algorithm of MOSS), and a pair's similarity is
the fraction of one file's fingerprints found in the other. The code that every student
receives -- the released notebook's stubs and signatures -- is boilerplate: its fingerprints
never count. Only the solution cells of each submission are compared (the locked cells are
the same for everyone).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from scalinglab.grading.course import Course, release_notebook_path, source_notebook_path
from scalinglab.grading.notebooks import nbgrader_meta

PUBLIC = "public-solution"  # the name the course's own solution goes by in the report
NOISE_TOKENS = 10  # k-grams shorter than this never count (solution cells are short)
GUARANTEE_TOKENS = 12  # any shared run at least this long is found (winnowing window)


@dataclass(frozen=True)
class Pair:
    """One submission against another (or the public solution): the fraction of ``student``'s
    fingerprints found in ``other`` and the reverse."""

    student: str
    other: str
    similarity: float
    other_similarity: float


def solution_code(notebook: str | os.PathLike) -> str:
    """The source of a notebook's solution code cells, in order, each under its grade id."""
    try:
        nb = nbformat.read(notebook, 4)
    except Exception:  # noqa: BLE001 -- an unreadable submission has nothing to compare
        return ""
    chunks = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("solution"):
            chunks.append(f"# --- {meta.get('grade_id', '?')}\n{cell.source}\n")
    return "\n".join(chunks)


def similarity_report(
    assignment: str,
    submissions: list[tuple[str, Path]],
    out: str | os.PathLike,
    course: Course | None = None,
) -> list[Pair]:
    """Compare the ``(student, notebook)`` submissions with each other and with the public
    solution; write copydetect's HTML report (pairs ranked by similarity, shared code
    highlighted) to ``out``; return every pair, most similar first."""
    from copydetect import CopyDetector

    course = course or Course.locate()
    with tempfile.TemporaryDirectory(prefix="scalinglab-similarity-") as tmp:
        folder = Path(tmp)
        for sub in ("students", "public", "boilerplate"):
            (folder / sub).mkdir()
        (folder / "public" / f"{PUBLIC}.py").write_text(
            solution_code(source_notebook_path(assignment, course))
        )
        (folder / "boilerplate" / "release.py").write_text(
            solution_code(release_notebook_path(assignment, course))
        )
        for student, notebook in submissions:
            (folder / "students" / f"{student}.py").write_text(solution_code(notebook))
        detector = CopyDetector(
            test_dirs=[str(folder / "students")],
            ref_dirs=[str(folder / "students"), str(folder / "public")],
            boilerplate_dirs=[str(folder / "boilerplate")],
            extensions=["py"],
            noise_t=NOISE_TOKENS,
            guarantee_t=GUARANTEE_TOKENS,
            display_t=0.0,
            autoopen=False,
            silent=True,
            out_file=str(Path(out).resolve()),
        )
        detector.run()
        pairs = [
            Pair(Path(test).stem, Path(ref).stem, float(sim_test), float(sim_ref))
            for sim_test, sim_ref, test, ref, *_ in detector.get_copied_code_list()
        ]
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        detector.generate_html_report()
    return sorted(pairs, key=lambda p: -max(p.similarity, p.other_similarity))
