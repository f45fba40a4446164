"""Every page in the table of contents executes offline, without errors, and draws plots."""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import pytest
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
from course_book import encrypt_kernel_transport  # noqa: E402

encrypt_kernel_transport()  # no "Kernel is running over TCP without encryption" per notebook


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []
    for entry in toc.get("chapters", []):
        files.append(entry["file"])
        files += [sub["file"] for sub in entry.get("sections", [])]
    return files


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


def test_every_toc_entry_exists_and_every_chapter_is_listed():
    for name in _toc_files():
        assert (ROOT / f"{name}.md").is_file(), name
    listed = set(_toc_files())
    for page in (ROOT / "book").glob("[0-9][0-9]-*.md"):
        assert f"book/{page.stem}" in listed, f"{page.name} is missing from _toc.yml"
