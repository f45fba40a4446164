"""The notation page names the symbols the chapters use, in the chapters that introduce them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTATION = ROOT / "book" / "notation.md"
ROW = re.compile(r"^\| \$(?P<symbol>[^$]+)\$ \|.*\{doc\}`(?P<page>[^`]+)` \|$", re.M)
MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+)\$|```\{math\}(.+?)```", re.S)


def rows() -> list[tuple[str, str]]:
    found = [(m["symbol"], m["page"]) for m in ROW.finditer(NOTATION.read_text())]
    assert len(found) >= 25, "the notation tables could not be parsed"
    return found


def math_of(page: str) -> str:
    """All the math of a page, inline and display, as one string."""
    text = (ROOT / "book" / f"{page}.md").read_text()
    return "\n".join("".join(g for g in m.groups() if g) for m in MATH.finditer(text))


def uses(math: str, symbol: str) -> bool:
    """``symbol`` occurs in ``math`` as a symbol, not as part of a longer name
    (``$p$`` is not found in ``$p_y$``'s ``p_`` nor ``\\exp``)."""
    core = re.escape(symbol)
    return re.search(rf"(?<![A-Za-z\\]){core}(?![A-Za-z])", math) is not None


@pytest.mark.parametrize(("symbol", "page"), rows(), ids=lambda v: v)
def test_symbol_is_used_where_the_notation_page_says_it_is_introduced(symbol, page):
    assert uses(math_of(page), symbol), f"${symbol}$ does not appear in the math of {page}"


def test_every_chapter_page_is_covered():
    pages = {page for _, page in rows()}
    chapters = {p.stem for p in (ROOT / "book").glob("[0-9][0-9]-*.md")}
    missing = {c for c in chapters if c not in pages}
    assert not missing, f"no symbol is introduced by {sorted(missing)}"


def test_each_symbol_is_listed_once_per_meaning_table():
    symbols = [s for s, _ in rows()]
    # p appears twice on purpose: a probability (chapter 1) and a feature count (chapter 6)
    duplicates = {s for s in symbols if symbols.count(s) > 1} - {"p"}
    assert not duplicates, duplicates
