"""Sphinx extension for the course book (loaded by _config.yml's ``local_extensions``).

* Each page that is a notebook offers its executed notebook (``.ipynb``) in the header's
  download menu, next to the MyST source (sphinx-book-theme does this only when a Binder or
  JupyterHub launch button is configured, which an offline book has not).
* Each chapter page ``book/NN-slug`` whose exercise ``exercises/NN-slug/NN-slug.ipynb``
  exists links to it, under the title and in the download menu; the notebook is copied into
  the build (``exercises/NN-slug/NN-slug.ipynb`` next to ``index.html``), so the link works
  offline and from any copy of ``_build/html``.
* Every page's footer names the course's version (``scalinglab.__version__``, the one
  source shared with ``scalinglab --version``) and the licences of the text and the code.
* Wide equations, code and tables scroll sideways on a phone, with a shadow at the edge
  that shows there is more (``static/course_book.css``).
* Search result snippets come from the article, not from the page chrome around it
  (``static/course_book.js``): Sphinx takes the text of ``[role=main]``, which in this theme
  starts with the download menu's labels.
"""

from __future__ import annotations

import posixpath
import re
import shutil
from html import escape
from pathlib import Path

CHAPTER = re.compile(r"^book/(\d\d-[^/]+)$")


def _exercise(app, pagename: str) -> str | None:
    """Path of the chapter's exercise notebook relative to the book root, or None."""
    match = CHAPTER.match(pagename)
    if not match:
        return None
    slug = match.group(1)
    rel = f"exercises/{slug}/{slug}.ipynb"
    return rel if (Path(app.srcdir) / rel).is_file() else None


def _exercise_note(href: str, name: str) -> str:
    return (
        '<div class="admonition tip exercise-link">\n'
        '<p class="admonition-title">Exercise</p>\n'
        f'<p>This chapter\'s autograded exercise: <a class="reference download" href="{escape(href)}"'
        f' download="{escape(name)}"><code>{escape(name)}</code></a>. Open it in Jupyter, write'
        " your code where it says <code># YOUR CODE HERE</code> and run its test cells, or check"
        f" it from a terminal with <code>scalinglab validate {escape(name)}</code>.</p>\n"
        "</div>\n"
    )


def _add_download_links(app, pagename, templatename, context, doctree):
    """Before sphinx-book-theme's header buttons (priority 501): the executed notebook."""
    outdir = Path(app.outdir)
    executed = outdir.parent / "jupyter_execute" / f"{pagename}.ipynb"
    if doctree is not None and executed.is_file() and not context.get("ipynb_source"):
        target = outdir / "_sources" / f"{pagename}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(executed, target)
        context["ipynb_source"] = f"{pagename}.ipynb"


def _add_exercise_button(app, pagename, templatename, context, doctree):
    """After sphinx-book-theme's header buttons: the chapter's exercise, under the title and
    in the download menu."""
    rel = _exercise(app, pagename)
    if rel is None:
        return
    # under the title (in the HTML only: the search index stays the page's own text)
    body = context.get("body", "")
    if "</h1>" in body:
        note = _exercise_note(context["pathto"](rel, 1), posixpath.basename(rel))
        context["body"] = body.replace("</h1>", "</h1>\n" + note, 1)
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].insert(
                0,
                {
                    "type": "link",
                    "url": context["pathto"](rel, 1),
                    "text": "exercise .ipynb",
                    "tooltip": "Download this chapter's exercise notebook",
                    "icon": "fas fa-pencil",
                    "label": "download-exercise-button",
                },
            )


def _copy_exercises(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for docname in app.env.found_docs:
        rel = _exercise(app, docname)
        if rel is not None:
            target = Path(app.outdir) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(app.srcdir) / rel, target)


def _static_path(app):
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))


def _version_footer(app, config):
    """The version and the licences in every page's footer (sphinx-book-theme's
    ``extra_footer``); Sphinx's ``version``/``release`` too, for the PDF and the HTML title."""
    from scalinglab import __version__

    config.version = config.release = __version__
    options = dict(config.html_theme_options or {})
    options["extra_footer"] = (
        f'<p class="course-version">Why Deep Learning Scales, version {escape(__version__)}. '
        "Text and figures: CC BY 4.0; code: MIT (the repository's LICENSE-CONTENT and "
        "LICENSE). How to cite it: the repository's CITATION.cff.</p>"
    )
    config.html_theme_options = options


def encrypt_kernel_transport() -> None:
    """Start the pages' kernels with CurveZMQ transport encryption.

    ipykernel >= 7 warns "Kernel is running over TCP without encryption" on every page it
    executes, because jupyter_client's ``KernelManager.transport_encryption`` defaults to
    ``"disabled"``. With ``"auto"`` the manager provisions Curve keys whenever the kernelspec
    declares ``supported_encryption: ["curve"]`` (ipykernel 7's does) and behaves as before
    otherwise. Jupyter Book 1.x creates its kernel managers without a config object, so the
    trait's default is the only setting that reaches them; the same call serves the tests
    and benchmarks that execute notebooks with nbclient.
    """
    from jupyter_client.manager import KernelManager

    trait = getattr(KernelManager, "transport_encryption", None)  # jupyter_client >= 8.8
    if trait is not None and "auto" in (trait.values or ()):
        trait.default_value = "auto"


def setup(app):
    encrypt_kernel_transport()
    app.connect("config-inited", _version_footer)
    app.connect("builder-inited", _static_path)
    app.add_js_file("course_book.js")
    app.add_css_file("course_book.css")
    app.connect("html-page-context", _add_download_links, priority=450)
    app.connect("html-page-context", _add_exercise_button, priority=550)
    app.connect("build-finished", _copy_exercises)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
