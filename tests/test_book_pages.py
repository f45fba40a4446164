"""Every page in the table of contents executes offline, without errors, and draws plots."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import jupytext
import pytest
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
from course_book import encrypt_kernel_transport  # noqa: E402

from scalinglab.syllabus import toc_files  # noqa: E402

encrypt_kernel_transport()  # no "Kernel is running over TCP without encryption" per notebook


def _toc_files() -> list[str]:
    return toc_files(ROOT)


def _code_pages() -> list[Path]:
    pages = [ROOT / f"{name}.md" for name in _toc_files()]
    return [p for p in pages if "{code-cell}" in p.read_text()]


@pytest.mark.slow
@pytest.mark.parametrize("page", _code_pages(), ids=lambda p: p.stem)
def test_page_executes_and_plots(page, monkeypatch):
    nb = jupytext.read(page)
    # the kernel inherits this: Jupyter's inline backend, as in `make book`
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{page.name} draws no figure"
    # as wide as the content column at most (scalinglab.figures: the style's crop margin),
    # or the page shrinks the image and its smallest text with it; read from the PNG header
    from scalinglab.figures import COLUMN_WIDTH_IN, DPI

    widths = [_png_width(o["data"]["image/png"]) for o in images]
    assert max(widths) <= round(COLUMN_WIDTH_IN * DPI), f"{page.name}: images {widths} px wide"


def _png_width(data: str) -> int:
    """The width in pixels of a base64-encoded PNG (its IHDR chunk, bytes 16-20)."""
    png = base64.b64decode(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big")


def test_every_toc_entry_exists_and_every_chapter_is_listed():
    for name in _toc_files():
        assert (ROOT / f"{name}.md").is_file(), name
    listed = set(_toc_files())
    for page in (ROOT / "book").glob("[0-9][0-9]-*.md"):
        assert f"book/{page.stem}" in listed, f"{page.name} is missing from _toc.yml"


# Chapters being rewritten on other branches when the numbering changed: after merging them,
# run `python numref_convert.py book/NN-slug.md` on each and remove it from this set.
NUMBERING_PENDING: set[str] = set()

# A MyST figure: a code cell whose YAML header has mystnb: figure: caption:
FIGURE_HEADER = re.compile(r"^```\{code-cell\}[^\n]*\n---\n(.*?\n)---\n", re.M | re.S)


def test_sphinx_numbers_chapters_and_figures_and_pages_do_not_number_them_again():
    """The chapters are numbered in _toc.yml, so Sphinx writes "1. Title" and "Fig. 1.2":
    a page's own "# 1. Title", "Figure 2. ..." caption or "Figure 2" in the text would be a
    second, hand-kept number (the text refers to a figure as {numref}`fig-01-2`)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    numbered = [f for part in toc["parts"] if part.get("numbered") for f in part["chapters"]]
    assert [f["file"] for f in numbered] == sorted(
        f"book/{p.stem}" for p in (ROOT / "book").glob("[0-9][0-9]-*.md")
    ), "the numbered part of _toc.yml is not the chapters, in order"
    for name in _toc_files():
        if name in NUMBERING_PENDING:
            continue
        text = (ROOT / f"{name}.md").read_text(encoding="utf-8")
        title = re.search(r"^# (.+)$", text, re.M).group(1)
        assert not re.match(r"\d+\.\s", title), f"{name}: numbered by hand: {title!r}"
        captions = [
            ((yaml.safe_load(h) or {}).get("mystnb") or {}).get("figure", {}).get("caption", "")
            for h in FIGURE_HEADER.findall(text)
        ]
        doubled = [c[:40] for c in captions if re.match(r"\s*Fig(ure|\.)?\s*\d", c)]
        assert not doubled, f"{name}: captions numbered by hand: {doubled}"
        if captions:  # a page with numbered figures refers to them with {numref}
            prose = re.sub(r"```.*?```", "", text, flags=re.S)
            left = re.findall(r"(?<!their )(?<!their\n)\bFigures? \d+(?!\s+of\s+\{cite)", prose)
            assert not left, f"{name}: figures referred to by hand: {left}"
