"""The built book as a reader gets it: every page of ``_build/html`` opened in headless
Chromium from a local server on 127.0.0.1, with every request to any other address refused.

For each page: no request leaves the server, no console error or uncaught script error, no
failed local request, every formula typeset by the book's own MathJax (no raw TeX left, no
TeX error), every image loaded, no Jupyter widget (widgets need scripts from a CDN), the
page's notebook and, on a chapter, its exercise notebook downloadable; the table of contents
is there on a desktop screen, and on a phone-size screen (390x844) the menu button opens it
and the "on this page" button opens the page's outline. The search page's snippets come
from the text of the pages.

Needs the built book (``make book``) and a Chromium (Debian/Ubuntu: ``apt-get install
chromium``; elsewhere set ``CHROMIUM=/path/to/chrome``): Playwright drives the system's
browser and downloads none. Skipped, with the reason, when either is missing, unless
``SCALINGLAB_REQUIRE_BROWSER=1`` (as in ``.ci/run``) makes that a failure.
``BOOK_HTML=/path/to/html`` tests another build.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))  # another build: BOOK_HTML=...
# The browser's names and flags (as root, in a container, without network: no sandbox, no
# GPU, none of Chromium's own background connections) are the PDF printer's.
sys.path.insert(0, str(ROOT / "_ext"))
from print_pdf import CHROMIUM_ARGS, CHROMIUM_NAMES  # noqa: E402

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
TIMEOUT_MS = 30_000
REDIRECT = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.IGNORECASE)


def _chromium() -> str | None:
    path = os.environ.get("CHROMIUM")
    if path:
        return path if Path(path).is_file() else None
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def _pages() -> list[str]:
    """Every HTML page of the build (relative paths), whatever the table of contents holds."""
    if not HTML.is_dir():
        return []
    skip = {"_static", "_sources", "_images", "_downloads", "jupyter_execute"}
    return sorted(
        p.relative_to(HTML).as_posix()
        for p in HTML.rglob("*.html")
        if not skip & set(p.relative_to(HTML).parts)
    )


PAGES = _pages() or ["index.html"]  # (a missing build is reported by the fixtures)
pytestmark = pytest.mark.slow
# .ci/run sets this: there, a missing browser or book fails the test instead of skipping it
REQUIRED = os.environ.get("SCALINGLAB_REQUIRE_BROWSER") == "1"


def _missing(reason: str):
    (pytest.fail if REQUIRED else pytest.skip)(reason)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        _missing(f"the book is not built: run `make book` first (no {HTML / 'index.html'})")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if _chromium() is None:
        _missing(
            "no Chromium found: install it (Debian/Ubuntu: `apt-get install chromium`) or set "
            "CHROMIUM=/path/to/chrome; the browser test drives the system's browser"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """A page opened in a fresh browser context that records what goes wrong."""

    def __init__(self, browser, server: str, page: str, **context_options):
        self.server = server
        self.context = browser.new_context(**context_options)
        self.external: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        self.page.on("response", self._response)
        self.page.on("requestfailed", self._failed)
        self.page.goto(f"{server}/{page}", wait_until="load")
        redirect = REDIRECT.search((HTML / page.split("?")[0]).read_text(errors="replace"))
        if redirect:  # the book's index.html sends the reader to the first page
            target = urljoin(f"{server}/{page}", redirect[1])
            self.page.wait_for_url(target)
            self.page.wait_for_load_state("load")

    def _local(self, url: str) -> bool:
        return url.startswith(self.server + "/") or urlsplit(url).scheme in ("data", "blob")

    def _route(self, route):
        if self._local(route.request.url):
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort("blockedbyclient")

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    def _response(self, response):
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.errors.append(f"HTTP {response.status}: {response.url}")

    def _failed(self, request):
        if self._local(request.url):
            self.errors.append(f"failed: {request.url} ({request.failure})")

    def close(self):
        self.context.close()


# Typeset math, when MathJax is done: every formula is an mjx-container; raw TeX delimiters
# left in the text (outside code) mean a formula that was never typeset; MathJax's
# accessible MathML copy shows TeX errors (merror) and undefined macros (printed as red
# text with their backslash).
MATH_REPORT = r"""
async () => {
  const formulas = [...document.querySelectorAll("div.math, span.math")];
  const report = {formulas: formulas.length, display: 0, untypeset: [], tex_errors: [], raw: []};
  if (formulas.length) {
    if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      report.untypeset.push("MathJax is not loaded");
      return report;
    }
    await MathJax.startup.promise;
  }
  for (const el of formulas) {
    if (el.tagName === "DIV") report.display += 1;
    const jax = el.querySelector("mjx-container");
    if (!jax) { report.untypeset.push(el.textContent.trim().slice(0, 80)); continue; }
    const mml = jax.querySelector("mjx-assistive-mml");
    if (jax.querySelector("mjx-merror") || (mml && (mml.querySelector("merror") || mml.textContent.includes("\\"))))
      report.tex_errors.push((mml ? mml.textContent : "").trim().slice(0, 80));
  }
  const body = document.querySelector("article") || document.body;
  const copy = body.cloneNode(true);
  copy.querySelectorAll("pre, code, script, style, textarea, mjx-container").forEach(e => e.remove());
  for (const m of copy.textContent.matchAll(/\\[[(]|\\begin\{|\$\$/g))
    report.raw.push(copy.textContent.slice(Math.max(0, m.index - 30), m.index + 50));
  return report;
}
"""

IMAGE_REPORT = """
async () => {
  const images = [...document.images];
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return {count: images.length,
          broken: images.filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src)};
}
"""


# The first link matching the selector that a reader can tap: inside the viewport and not
# covered by anything else (the element at its centre is the link or inside it).
TAPPABLE = """
(selector) => {
  for (const el of document.querySelectorAll(selector)) {
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) continue;
    const hit = document.elementFromPoint(x, y);
    if (hit && (hit === el || el.contains(hit))) return el.textContent.trim() || el.href;
  }
  return null;
}
"""
BOOK_NAV_LINK = ".bd-docs-nav a.reference"  # the table of contents, in the primary sidebar
PAGE_TOC_LINK = ".bd-toc-nav a.nav-link, .page-toc a.nav-link"  # "on this page"


def _exercise_notebook(page: str) -> str | None:
    match = re.fullmatch(r"book/(\d\d-[^/]+)\.html", page)
    if match and (ROOT / "exercises" / match[1] / f"{match[1]}.ipynb").is_file():
        return f"exercises/{match[1]}/{match[1]}.ipynb"
    return None


def _is_notebook(page: str) -> bool:
    return (HTML.parent / "jupyter_execute" / page).with_suffix(".ipynb").is_file()


def _assert_notebook(visit: Visit, url: str):
    response = visit.page.request.get(url)
    assert response.status == 200, f"{url}: HTTP {response.status}"
    notebook = json.loads(response.text())
    assert notebook.get("nbformat") == 4 and notebook.get("cells"), f"{url} is no notebook"


@pytest.mark.parametrize("page", PAGES)
def test_page_offline_formulas_images_downloads(browser, server, page):
    visit = Visit(browser, server, page, **DESKTOP)
    try:
        math = visit.page.evaluate(MATH_REPORT)
        images = visit.page.evaluate(IMAGE_REPORT)
        widgets = visit.page.locator(
            "script[type='application/vnd.jupyter.widget-view+json']"
        ).count()
        hrefs = visit.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        notebooks = [h for h in hrefs if h.endswith(".ipynb") and h.startswith(server)]
        for url in sorted(set(notebooks)):
            _assert_notebook(visit, url)
        navigation = visit.page.evaluate(TAPPABLE, BOOK_NAV_LINK)
        toggles = []  # the sidebar button hides the table of contents, then shows it again
        for _ in range(2):
            visit.page.locator(".primary-toggle:visible").first.click()
            visit.page.wait_for_timeout(400)
            toggles.append(visit.page.evaluate(TAPPABLE, BOOK_NAV_LINK) is not None)
        visit.page.wait_for_timeout(200)  # late console messages (fonts, lazy scripts)
    finally:
        visit.close()

    assert not widgets, (
        f"{page} shows {widgets} Jupyter widget(s), which need scripts from a CDN: a progress "
        "bar from tqdm.auto or tqdm.notebook? Print plain progress (`from tqdm import tqdm`) "
        "or none (progress=False)"
    )
    assert not visit.external, f"{page} requests outside the book: {visit.external}"
    assert not visit.errors, f"{page}: " + "\n".join(visit.errors)
    assert not math["untypeset"], f"{page}: formulas not typeset: {math['untypeset']}"
    assert not math["tex_errors"], f"{page}: TeX errors: {math['tex_errors']}"
    assert not math["raw"], f"{page}: raw TeX in the text: {math['raw']}"
    assert not images["broken"], f"{page}: images that do not load: {images['broken']}"
    assert navigation, f"{page}: no table of contents to click on a desktop screen"
    assert toggles == [False, True], f"{page}: the sidebar button does not hide and show it"
    if _is_notebook(page):
        own = f"{server}/_sources/{page[: -len('.html')]}.ipynb"
        assert own in notebooks, f"{page} offers no .ipynb download of itself"
    exercise = _exercise_notebook(page)
    if exercise:
        assert f"{server}/{exercise}" in notebooks, f"{page} does not link {exercise}"


@pytest.mark.parametrize("page", PAGES)
def test_phone_menu_buttons_open(browser, server, page):
    visit = Visit(browser, server, page, **PHONE)
    try:
        problems = []
        assert visit.page.evaluate(TAPPABLE, BOOK_NAV_LINK) is None, (
            f"{page}: on a phone the table of contents should be hidden until the menu opens"
        )
        menu = visit.page.locator(".primary-toggle:visible")
        if not menu.count():
            problems.append("no visible menu button")
        else:
            menu.first.click()
            try:
                visit.page.wait_for_function(f"() => ({TAPPABLE})({BOOK_NAV_LINK!r})", timeout=5000)
            except Exception:
                problems.append("the menu button does not open the table of contents")
            visit.page.keyboard.press("Escape")
        outline = visit.page.locator(".secondary-toggle:visible")
        has_outline = visit.page.locator(PAGE_TOC_LINK).count() > 0
        if has_outline and not outline.count():
            problems.append("no visible 'on this page' button")
        elif outline.count():
            visit.page.wait_for_timeout(300)  # the menu's dialog closing
            outline.first.click()
            try:
                visit.page.wait_for_function(f"() => ({TAPPABLE})({PAGE_TOC_LINK!r})", timeout=5000)
            except Exception:
                problems.append("the 'on this page' button does not open the page's outline")
    finally:
        visit.close()
    assert not problems, f"{page} at 390x844: " + "; ".join(problems)
    assert not visit.external, f"{page} requests outside the book: {visit.external}"
    assert not visit.errors, f"{page}: " + "\n".join(visit.errors)


def _search_words() -> list[str]:
    """The longest word of each chapter's title, and "entropy" (Sphinx stems it to "entropi",
    which is nowhere in the text, so its snippets fall back to the start of the page)."""
    words = {"entropy"}
    for page in PAGES:
        if re.fullmatch(r"book/\d\d-.*\.html", page):
            title = re.search(r"<title>(.*?)</title>", (HTML / page).read_text(), re.S)
            candidates = re.findall(r"[A-Za-z]{5,}", title[1].split("—")[0]) if title else []
            if candidates:
                words.add(max(candidates, key=len).lower())
    return sorted(words)


# TeX source: a control word, or MathJax's inline/display delimiters
RAW_TEX = re.compile(r"\\[A-Za-z]{2,}|\\[()\[\]]")
# the download menu's labels (".ipynb", ".md", ".pdf", "exercise") as a snippet's text
CHROME_LABELS = re.compile(r"(^|[\s.])\.(ipynb|md|pdf)(\s|$)")


@pytest.mark.parametrize("word", _search_words())
def test_search_snippets_are_page_text(browser, server, word):
    visit = Visit(browser, server, f"search.html?q={word}", **DESKTOP)
    try:
        visit.page.wait_for_function(
            """() => {
                 const items = document.querySelectorAll("#search-results li");
                 const done = document.querySelector("#search-results .search-summary");
                 return done && done.textContent.trim() && items.length > 0 &&
                        [...items].every(li => li.querySelector("p.context"));
               }"""
        )
        # a glossary term is a search result of its own (an "object" whose snippet is its
        # name): only page-text results carry a snippet of the page
        snippets = visit.page.eval_on_selector_all(
            "#search-results li",
            """els => els.filter(li => !(li.querySelector('a') || {}).href?.includes('#term-'))
                         .map(li => li.querySelector('p.context').textContent)""",
        )
    finally:
        visit.close()
    assert snippets, f"no result for {word!r}"
    for text in snippets:
        # a snippet is up to 240 characters of the page's text, with "..." around it
        core = text.strip().strip(".").strip()
        assert len(core) >= 40 and not CHROME_LABELS.search(text), (
            f"search snippet for {word!r} shows page chrome instead of text: {text[:120]!r}"
        )
        # formulas read as text (course_book.js), not as TeX source
        assert not RAW_TEX.search(text), f"search snippet for {word!r} shows TeX: {text!r}"
    assert not visit.external, f"search requests outside the book: {visit.external}"
    assert not visit.errors, "search: " + "\n".join(visit.errors)


# Chapters whose figures are numbered MyST figures (a caption, a name, alt text) drawn in the
# book's style (scalinglab.figures.use_course_style); the others still print their captions
# as paragraphs below the figure and are converted one by one.
FIGURE_PAGES = {
    "book/01-softmax-cross-entropy.html",
    "book/02-trainability.html",
    "book/03-intrinsic-dimension.html",
    "book/04-scaling-laws.html",
    "book/05-resolution-limited-scaling.html",
    "book/06-double-descent.html",
    "book/07-emergence.html",
    "book/08-many-skills.html",
}

FIGURE_REPORT = """() => [...document.querySelectorAll("article img")]
  .filter(img => img.src.includes("/_images/"))
  .map(img => ({
    src: img.getAttribute("src"),
    alt: img.getAttribute("alt") || "",
    caption: (img.closest("figure") || {}).querySelector ?
        (img.closest("figure").querySelector("figcaption") || {}).textContent || "" : "",
    natural: img.naturalWidth,
    shown: img.getBoundingClientRect().width,
  }))"""


@pytest.mark.parametrize("page", sorted(p for p in PAGES if p in FIGURE_PAGES))
def test_figures_have_captions_alt_text_and_legible_fonts_on_a_phone(browser, server, page):
    from scalinglab.figures import COLUMN_WIDTH_IN, DPI, MIN_FONT_PT

    visit = Visit(browser, server, page, **PHONE)
    try:
        figures = visit.page.evaluate(FIGURE_REPORT)
    finally:
        visit.close()
    assert figures, f"{page} shows no figure"
    for fig in figures:
        name = fig["src"].rsplit("/", 1)[-1]
        # alt text of its own (not the image's file name, Sphinx's default), read aloud as
        # words: no TeX source
        alt = fig["alt"]
        assert alt and not re.search(r"(^|/)[\w.-]+\.(png|svg|jpe?g)$", alt), (
            f"{page}: {name} has no alt text of its own: {alt!r}"
        )
        assert "$" not in alt and "\\" not in alt, f"{page}: {name}'s alt text is TeX: {alt!r}"
        # Sphinx numbers the figure within its chapter ("Fig. 2.3", the chapters are numbered
        # in _toc.yml); a hand-written "Figure 3." after it would show the number twice
        chapter = int(re.search(r"/(\d\d)-", page).group(1))
        assert re.match(rf"\s*Fig\.\s*{chapter}\.\d+\s", fig["caption"]), (
            f"{page}: {name} is not a numbered figure with a caption: {fig['caption'][:60]!r}"
        )
        assert not re.match(r"\s*Fig\.\s*[\d.]+\s*Fig(ure|\.)?\s*\d", fig["caption"]), (
            f"{page}: {name}'s caption carries two numbers: {fig['caption'][:60]!r}"
        )
        # column-sized at the style's dpi, crop margin included (scalinglab.figures.PAD_IN)
        assert fig["natural"] <= round(COLUMN_WIDTH_IN * DPI), (
            f"{page}: {name} is {fig['natural']} px wide, wider than the column"
        )
        # the style's smallest font, at the scale the phone shows the image: the page must
        # not shrink it below 7 CSS pixels (what can be measured without reading the PNG)
        smallest = MIN_FONT_PT * DPI / 72 * fig["shown"] / fig["natural"]
        assert smallest >= 7, f"{page}: {name}'s smallest text shows at {smallest:.1f} px"
