"""Print the book's single-page HTML build to one PDF with the system's Chromium.

    python _ext/print_pdf.py _build/singlehtml _build/pdf/why-deep-learning-scales.pdf

(``make pdf`` runs it after ``jupyter-book build . --builder singlehtml``.)

Why Chromium and not LaTeX: the book is written for the browser (MathJax 3, MyST figures,
admonitions, wide tables), and Jupyter Book's LaTeX route needs a TeX Live installation of
about 1 GB and renders those differently (or not at all); Chromium is already the browser
the tests use, prints exactly what readers see, and works offline. It waits until MathJax
has typeset every formula and every image has loaded (the theme marks images as lazy, which
a print would otherwise leave blank), then prints A4 pages with page numbers, a document
outline from the headings, and tagged (accessible) text.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# As root in a container without network: no sandbox, no GPU, no background connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 120_000

# Everything loaded and typeset: MathJax 3's startup promise, then each image decoded.
READY = """async () => {
  document.querySelectorAll('img[loading="lazy"]').forEach(img => { img.loading = 'eager'; });
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(done => { img.onload = img.onerror = done; })));
  return [...document.images].filter(img => !img.naturalWidth).map(img => img.src);
}"""

# Print layout: the content column at full width, no navigation chrome, figures kept whole,
# code and wide equations wrapped rather than cut at the page edge.
PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-footer, .bd-footer-article,
.header-article, .prev-next-area, .exercise-link, .headerlink, #pst-back-to-top { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
.bd-page-width { max-width: 100% !important; }
figure, img, .cell_output, table { break-inside: avoid; }
img { max-width: 100% !important; height: auto !important; }
pre { white-space: pre-wrap; word-break: break-word; }
mjx-container[display="true"] { overflow: visible !important; }
h1 { break-before: page; }
"""


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not path:
        sys.exit("print_pdf: no Chromium found: install it (Debian: apt-get install chromium)")
    return path


def single_page(build: Path) -> Path:
    """The one HTML file of a singlehtml build, placed where its links work.

    ``index.html`` only redirects to the root document (``book/preface.html``), whose links
    (``_static/...``, ``_images/...``) Sphinx's singlehtml builder writes relative to the
    build's root, not to ``book/``: from there MathJax and the figures would not load. A copy
    at the root resolves them."""
    index = build / "index.html"
    match = re.search(r'url=([^"]+)"', index.read_text(encoding="utf-8"))
    if not match:
        return index
    copy = build / "print.html"
    shutil.copyfile(build / match.group(1), copy)
    return copy


def print_pdf(html: Path, pdf: Path) -> int:
    """Print ``html`` to ``pdf``; return the number of images that failed to load."""
    from playwright.sync_api import sync_playwright

    pdf.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.goto(html.resolve().as_uri(), wait_until="load", timeout=TIMEOUT_MS)
            page.add_style_tag(content=PRINT_CSS)
            page.emulate_media(media="print")
            broken = page.evaluate(READY)
            page.pdf(
                path=str(pdf),
                format="A4",
                print_background=True,
                prefer_css_page_size=True,
                display_header_footer=True,
                header_template="<span></span>",
                footer_template=(
                    '<div style="font-size:8px;width:100%;text-align:center;color:#555">'
                    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
                ),
                outline=True,
                tagged=True,
            )
        finally:
            browser.close()
    for src in broken:
        print(f"print_pdf: image did not load: {src}", file=sys.stderr)
    return len(broken)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    build, pdf = Path(argv[0]), Path(argv[1])
    if not (build / "index.html").is_file():
        print(f"print_pdf: no {build}/index.html: run jupyter-book's singlehtml build first")
        return 1
    html = single_page(build)
    broken = print_pdf(html, pdf)
    size = pdf.stat().st_size / 2**20
    print(f"wrote {pdf} ({size:.1f} MiB)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
