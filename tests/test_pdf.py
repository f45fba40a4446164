"""The book as one PDF (``make pdf``): every chapter, math rendered, every figure embedded.

The PDF is built by ``make pdf`` (after ``make book``); ``.ci/run`` builds it and sets
``SCALINGLAB_REQUIRE_PDF=1``, so there a missing PDF fails instead of skipping. The checks
read it with poppler's ``pdfinfo``, ``pdftotext`` and ``pdfimages`` (Debian: poppler-utils).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scalinglab.syllabus import toc_files

ROOT = Path(__file__).resolve().parents[1]
PDF = ROOT / "_build" / "pdf" / "why-deep-learning-scales.pdf"
PRINTED_HTML = ROOT / "_build" / "singlehtml" / "print.html"
REQUIRED = os.environ.get("SCALINGLAB_REQUIRE_PDF") == "1"
# TeX that MathJax failed to typeset would reach the text layer as its source
RAW_TEX = re.compile(r"\\frac|\\mathbb|\\begin\{|\\left|\\\(|\\\[|\$\$|\\sum_|\\log ")


def _need(*tools: str) -> None:
    reason = None
    if not PDF.is_file():
        reason = f"no {PDF.relative_to(ROOT)}: run `make book` then `make pdf`"
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not found (Debian: apt-get install poppler-utils)"
    if reason:
        (pytest.fail if REQUIRED else pytest.skip)(reason)


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _titles() -> dict[str, str]:
    """Each page of the table of contents and its title (its first level-1 heading)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]] + toc_files(ROOT)
    titles = {}
    for name in names:
        match = re.search(r"^# (.+)$", (ROOT / f"{name}.md").read_text(), re.M)
        titles[name] = match.group(1).strip()
    return titles


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00ad", "")).lower()


def test_page_count_matches_the_book():
    _need("pdfinfo")
    pages = int(re.search(r"^Pages:\s+(\d+)", _run("pdfinfo", str(PDF)), re.M).group(1))
    chapters = [n for n in _titles() if re.match(r"book/\d\d-", n)]
    # each chapter page prints to at least 4 A4 pages (text, figures, code), and the whole
    # book to well under 60 per chapter: a PDF outside that band lost or duplicated content
    assert 4 * len(chapters) <= pages <= 60 * len(_titles()), pages


def test_every_title_is_in_the_text_and_no_tex_is_left_raw():
    _need("pdftotext")
    text = _run("pdftotext", "-layout", str(PDF), "-")
    flat = _normalise(text)
    missing = [t for t in _titles().values() if _normalise(t) not in flat]
    assert not missing, f"titles missing from the PDF: {missing}"
    raw = sorted(set(RAW_TEX.findall(text)))
    assert not raw, f"unrendered TeX in the PDF: {raw}"


def test_every_figure_is_embedded():
    _need("pdfimages")
    if not PRINTED_HTML.is_file():
        (pytest.fail if REQUIRED else pytest.skip)("no singlehtml build next to the PDF")
    html = PRINTED_HTML.read_text(encoding="utf-8")
    figures = re.findall(r'<img [^>]*src="(_images/[^"]+\.png)"', html)
    listing = _run("pdfimages", "-list", str(PDF)).splitlines()[2:]
    embedded = [line for line in listing if line.split()[2] == "image"]
    assert figures, "the single-page HTML has no figure"
    assert len(embedded) >= len(figures), (len(embedded), len(figures))
