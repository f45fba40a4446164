"""The course's syllabus, read from the course itself: chapters, learning goals, exercises.

The instructor guide (``book/instructor-guide.md``) builds its tables from these functions,
so that the learning outcomes it lists are the chapters' own "Learning goals" admonitions
and the exercise parts are the graded cells of ``solutions/``: a chapter that changes its
goals or its exercise changes the guide with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

CHAPTER_PAGE = re.compile(r"^\d\d-[a-z0-9-]+$")
GOALS = re.compile(r"```\{admonition\} Learning goals\n(?::[^\n]*\n)*(.*?)```", re.S)
GOAL_ITEM = re.compile(r"^\d+\.\s+(.*?)(?=^\d+\.\s|\Z)", re.S | re.M)


@dataclass(frozen=True)
class Part:
    """One autograded part of an exercise (a graded test cell of the source notebook)."""

    grade_id: str
    points: float


@dataclass(frozen=True)
class Chapter:
    slug: str  # "04-scaling-laws"
    number: int
    title: str  # the page's level-1 heading, without its number
    goals: tuple[str, ...]  # the learning goals, one sentence each, as the page words them
    parts: tuple[Part, ...]  # the exercise's autograded parts (empty without an exercise)

    @property
    def points(self) -> float:
        return sum(part.points for part in self.parts)


def course_root(start: Path | None = None) -> Path:
    """The course checkout: the first folder at or above ``start`` with a ``_toc.yml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _toc.yml at or above {here}")


def toc_files(root: Path | None = None) -> list[str]:
    """Every page of ``_toc.yml`` after the root, in order (``book/01-softmax-...``).

    The table of contents groups the pages into parts (the numbered chapters, then the
    unnumbered rest); a flat ``chapters:`` list is read too.
    """
    import yaml

    toc = yaml.safe_load((course_root(root) / "_toc.yml").read_text(encoding="utf-8"))
    entries = [e for part in toc.get("parts", []) for e in part.get("chapters", [])]
    entries += toc.get("chapters", [])
    files = []
    for entry in entries:
        files.append(entry["file"])
        files += [sub["file"] for sub in entry.get("sections", [])]
    return files


def learning_goals(page_text: str) -> tuple[str, ...]:
    """The numbered items of a page's "Learning goals" admonition, joined onto one line."""
    match = GOALS.search(page_text)
    if not match:
        return ()
    items = GOAL_ITEM.findall(match.group(1))
    return tuple(re.sub(r"\s+", " ", item).strip().rstrip(";.") for item in items)


def exercise_parts(notebook: Path) -> tuple[Part, ...]:
    """The graded code cells of an nbgrader source notebook, in order, with their points."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    parts = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("grade") and not meta.get("solution"):
            parts.append(Part(meta["grade_id"], float(meta.get("points", 0))))
    return tuple(parts)


def chapters(root: Path | None = None) -> list[Chapter]:
    """Every chapter page of ``book/`` (``NN-slug.md``), in order."""
    root = course_root(root)
    found = []
    for page in sorted((root / "book").glob("[0-9][0-9]-*.md")):
        if not CHAPTER_PAGE.match(page.stem):
            continue
        text = page.read_text(encoding="utf-8")
        heading = re.search(r"^# (?:\d+\.\s*)?(.+)$", text, re.M)
        notebook = root / "solutions" / page.stem / f"{page.stem}.ipynb"
        found.append(
            Chapter(
                slug=page.stem,
                number=int(page.stem[:2]),
                title=heading.group(1).strip() if heading else page.stem,
                goals=learning_goals(text),
                parts=exercise_parts(notebook) if notebook.is_file() else (),
            )
        )
    return found


#: The exercise parts that test understanding rather than implementation: a prediction
#: committed before an experiment runs, or a parameter varied with a checkable conclusion.
#: ``tests/test_syllabus.py`` checks that every part named here is a graded cell of its
#: exercise and that every exercise has at least one predict-then-run and one vary part.
UNDERSTANDING: dict[str, dict[str, str]] = {
    "01-softmax-cross-entropy": {
        "test_predict_l1": "predict, then run: where training with the L1 loss ends",
        "test_gap_law": "vary the data: the gap above the floor against k/(2n)",
    },
    "02-trainability": {
        "test_predict": "predict, then run (and explain): the signal ratio of a deep Xavier + ReLU net",
        "test_critical": "vary the weight scale: find the critical σ_w² of tanh",
        "test_lr": "vary the width: the optimal learning rate's shift, SP against µP",
    },
    "03-intrinsic-dimension": {
        "test_noise_prediction": "predict, then run: what noise does to a TwoNN estimate",
        "test_dimension_ratios": "vary the dimension: where the estimator breaks down",
    },
    "04-scaling-laws": {
        "test_baselines": "predict, then run (and explain): does the law beat naive baselines?",
        "test_ratio": "vary the budget: tokens per parameter as a power of compute",
    },
    "05-resolution-limited-scaling": {
        "test_predict": "predict, then run (and explain): the slope of 1-NN or interpolation at your own d",
        "test_dimension": "vary d: read the dimension off a measured slope",
    },
    "06-double-descent": {
        "test_multi_prediction": "predict, then run: the peak with several outputs",
        "test_peak_heights": "vary the label noise: is noise needed for a peak?",
    },
    "07-emergence": {
        "test_predict": "predict, then run (and explain): the memorisation plateau of a symmetric model",
        "test_length": "vary the answer length: later 'emergence' from the same loss",
    },
    "08-many-skills": {
        "test_predict": "predict, then run (and explain): when a memorising learner knows quantum k",
        "test_infer": "vary α: read the Zipf exponent back from a measured learning curve",
    },
}


def understanding_parts(chapter: Chapter) -> list[tuple[str, str]]:
    """The parts of ``chapter``'s exercise that test understanding, with what they ask."""
    return list(UNDERSTANDING.get(chapter.slug, {}).items())
