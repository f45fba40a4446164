"""One bibliography: every cited key has an entry, every entry is cited, every entry has an
identifier (DOI, arXiv id, ISBN or URL)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# {cite}`a,b`, {cite:t}`a`, {cite:p}`a; b` (MyST roles of sphinxcontrib-bibtex)
CITE = re.compile(r"\{(?:foot)?cite(?::[a-z]+)?\}`([^`]+)`")
ENTRY = re.compile(r"^@(\w+)\{([^,\s]+),(.*?)^\}", re.M | re.S)
FIELD = re.compile(r"^\s*(\w+)\s*=", re.M)
# plain-text citations the pages used before the bibliography: "Author et al. (2022)"
PLAIN = re.compile(r"\b[A-Z][a-z]+ et al\.,? \(?(19|20)\d\d\)?")


def entries() -> dict[str, tuple[str, set[str]]]:
    text = (ROOT / "references.bib").read_text(encoding="utf-8")
    found = {}
    for kind, key, body in ENTRY.findall(text):
        assert key not in found, f"duplicate entry {key}"
        found[key] = (kind.lower(), {f.lower() for f in FIELD.findall(body)})
    assert found, "references.bib has no entries"
    return found


def cited() -> dict[str, set[str]]:
    """Every cited key and the pages that cite it."""
    keys: dict[str, set[str]] = {}
    for page in sorted((ROOT / "book").glob("*.md")):
        for group in CITE.findall(page.read_text(encoding="utf-8")):
            for key in re.split(r"[,;]\s*", group):
                keys.setdefault(key.strip(), set()).add(page.name)
    return keys


def test_every_cited_key_has_an_entry():
    missing = {k: sorted(pages) for k, pages in cited().items() if k not in entries()}
    assert not missing, f"cited but not in references.bib: {missing}"


def test_every_entry_is_cited():
    unused = sorted(set(entries()) - set(cited()))
    assert not unused, f"in references.bib but cited nowhere: {unused}"


@pytest.mark.parametrize("key", sorted(entries()))
def test_every_entry_has_an_identifier(key):
    kind, fields = entries()[key]
    ids = {"doi", "eprint", "isbn", "url"} & fields
    assert ids, f"{key} has no doi, eprint (arXiv), isbn or url"
    if "eprint" in fields:
        assert "archiveprefix" in fields, f"{key}: an eprint needs archivePrefix = {{arXiv}}"
    if kind == "article":
        assert {"journal", "year"} <= fields, key


def test_converted_chapters_cite_only_through_the_bibliography():
    """A chapter that uses the bibliography has no plain-text "Author et al. (year)" left."""
    for page in sorted((ROOT / "book").glob("[0-9][0-9]-*.md")):
        text = page.read_text(encoding="utf-8")
        if not CITE.search(text):
            continue  # not converted yet
        prose = re.sub(r"```.*?```", "", text, flags=re.S)  # code cells may name papers
        left = [m.group(0) for m in PLAIN.finditer(prose)]
        assert not left, f"{page.name}: plain-text citations left: {left}"


def test_the_file_parses_as_bibtex_and_no_paper_has_two_entries():
    """The same parser the book uses (pybtex, under sphinxcontrib-bibtex) reads every entry:
    a merge that splices two entries shows up here rather than as a failed book build. And one
    paper is one entry: two keys with the same arXiv id or DOI would be cited inconsistently."""
    pybtex_database = pytest.importorskip("pybtex.database")
    database = pybtex_database.parse_file(str(ROOT / "references.bib"))
    assert set(database.entries) == set(entries())
    seen: dict[str, str] = {}
    for key, entry in database.entries.items():
        for field in ("eprint", "doi"):
            ident = entry.fields.get(field)
            if ident:
                assert ident not in seen, f"{key} and {seen[ident]} are the same paper ({ident})"
                seen[ident] = key
    # every field of an entry is one field: a spliced entry repeats one (pybtex keeps the last)
    for _kind, key, body in ENTRY.findall((ROOT / "references.bib").read_text(encoding="utf-8")):
        names = [f.lower() for f in FIELD.findall(body)]
        assert len(names) == len(set(names)), f"{key} repeats a field: {sorted(names)}"
