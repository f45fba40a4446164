"""The instructor guide's tables come from the course: goals, parts, understanding parts."""

from __future__ import annotations

import pytest

from scalinglab.syllabus import UNDERSTANDING, chapters, learning_goals

CHAPTERS = chapters()


def test_every_chapter_has_goals_and_an_exercise():
    assert [c.number for c in CHAPTERS] == list(range(1, len(CHAPTERS) + 1))
    for c in CHAPTERS:
        assert len(c.goals) >= 3, f"{c.slug}: learning goals not found"
        assert len(c.parts) >= 4 and c.points > 0, f"{c.slug}: fewer than 4 graded parts"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_understanding_parts_exist_and_cover_predict_and_vary(chapter):
    named = UNDERSTANDING.get(chapter.slug, {})
    graded = {part.grade_id for part in chapter.parts}
    assert set(named) <= graded, f"not graded parts of {chapter.slug}: {set(named) - graded}"
    kinds = " ".join(named.values())
    assert "predict, then run" in kinds and "vary" in kinds, chapter.slug


def test_learning_goals_parser():
    page = (
        "```{admonition} Learning goals\n:class: tip\nAfter this chapter you can\n\n"
        "1. do one thing\n   over two lines;\n2. do another.\n```\n"
    )
    assert learning_goals(page) == ("do one thing over two lines", "do another")
    assert learning_goals("no goals here") == ()
