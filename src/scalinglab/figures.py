"""One figure style for the whole book: sized for the content column, legible on a phone.

Every page calls :func:`use_course_style` once, in its first cell. It sets

* the **size**: figures at most :data:`COLUMN_WIDTH_IN` inches wide at :data:`DPI` dots per
  inch, i.e. 704 pixels, the width of the book's content column on a desktop, so a
  figure is shown at its natural size there and shrinks by about half on a 390-pixel phone
  (not by three quarters, as a 12-inch, four-panel row did);
* the **crop margin**: the book's images are cropped to their content (Jupyter's inline
  backend saves them with ``bbox_inches="tight"``) plus :data:`PAD_IN` on each side, less
  than constrained layout's own margin, so that a figure drawn at the full column width
  never comes out wider than the column (see :data:`PAD_IN`);
* the **fonts**: one set of sizes for every figure, the smallest (legends, ticks) at
  :data:`MIN_FONT_PT` points, which is ``MIN_FONT_PT * DPI / 72`` ≈ 14 pixels at natural
  size and about 7 CSS pixels on a phone: the floor the browser test checks;
* the **colours**: the Okabe–Ito palette (Okabe & Ito 2008), safe for the common forms of
  colour blindness, as the default colour cycle, and :data:`OKABE_ITO` by name;
* **log axes** that label decades as powers of ten and never label minor ticks as
  ``4×10⁰``: see :func:`plain_log_axis`.

A page with more panels than fit a row of two uses more rows (``plt.subplots(2, 2)``), not
a wider figure.
"""

from __future__ import annotations

#: The Okabe-Ito colour-blind-safe palette, by name.
OKABE_ITO = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
#: The default colour cycle: the palette without yellow (too light on white) at the end.
CYCLE = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky")]
CYCLE += [OKABE_ITO["black"], OKABE_ITO["yellow"]]

DPI = 110
#: The content column of the book (sphinx-book-theme) is about 700 CSS pixels wide.
COLUMN_WIDTH_IN = 6.4
#: The margin a tight crop leaves around the content (``savefig.pad_inches``). A cropped
#: image is its content plus this margin on each side, and a constrained-layout figure's
#: content ends ``figure.constrained_layout.w_pad`` (3/72 in) inside its edges; with
#: matplotlib's default of 0.1 in, a figure :data:`COLUMN_WIDTH_IN` wide came out
#: 716 pixels wide, over the 704-pixel column, and was shrunk (its smallest text with it).
#: 0.03 in (3 pixels) is below that margin: such a figure crops to 701 pixels, and the
#: outermost glyphs keep 3 pixels of white around them.
PAD_IN = 0.03
MIN_FONT_PT = 9.5  # legends and tick labels; titles and axis labels are larger
FONT_PT = 11.0

STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "savefig.pad_inches": PAD_IN,
    "figure.figsize": (COLUMN_WIDTH_IN, 3.6),
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": MIN_FONT_PT + 0.5,
    "ytick.labelsize": MIN_FONT_PT + 0.5,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": FONT_PT + 1,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
}


def use_course_style() -> None:
    """Apply the course's figure style to matplotlib (see the module docstring)."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    plt.rcParams["axes.prop_cycle"] = plt.cycler(color=CYCLE)


def plain_log_axis(ax, axis: str = "y") -> None:
    """Label a log axis at its decades only (10⁻¹, 10⁰, 10¹), never at minor ticks.

    Matplotlib labels minor ticks when an axis spans less than a decade or so, which gives
    labels like ``4×10⁰ … 6×10⁻¹`` that read as clutter; on a short axis, plain numbers at
    a few round values read better: pass the values with ``ax.set_yticks``.
    """
    from matplotlib.ticker import LogLocator, NullFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10))
    target.set_minor_formatter(NullFormatter())
