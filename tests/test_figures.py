"""The book's figure style (scalinglab.figures)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scalinglab.figures import (  # noqa: E402
    COLUMN_WIDTH_IN,
    CYCLE,
    DPI,
    MIN_FONT_PT,
    OKABE_ITO,
    PAD_IN,
    plain_log_axis,
    use_course_style,
)


def test_style_sizes_fonts_and_colours():
    with plt.rc_context():
        use_course_style()
        fig, ax = plt.subplots()
        width_px = fig.get_figwidth() * fig.dpi
        assert fig.dpi == DPI and width_px <= COLUMN_WIDTH_IN * DPI
        sizes = [
            plt.rcParams[k]
            for k in ("font.size", "legend.fontsize", "xtick.labelsize", "axes.titlesize")
        ]
        assert min(sizes) == MIN_FONT_PT
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        assert colours == CYCLE and set(CYCLE) == set(OKABE_ITO.values())
        plt.close(fig)


def test_plain_log_axis_labels_decades_only():
    with plt.rc_context():
        use_course_style()
        fig, ax = plt.subplots()
        ax.loglog([0.6, 4.0], [0.6, 4.0])  # less than a decade: matplotlib labels minors
        plain_log_axis(ax, "y")
        fig.canvas.draw()
        minor = [t.get_text() for t in ax.yaxis.get_minorticklabels() if t.get_text()]
        assert minor == []
        plt.close(fig)


def _saved_as_the_book_saves_it(fig) -> np.ndarray:
    """The PNG the book shows for ``fig``, as an RGB(A) array: what Jupyter's inline backend
    (``make book`` runs the pages with it) writes, with its own ``print_figure`` keywords."""
    from IPython.core.pylabtools import print_figure
    from matplotlib_inline.config import InlineBackend

    kwargs = InlineBackend().print_figure_kwargs
    assert kwargs.get("bbox_inches") == "tight"  # the crop that PAD_IN is the margin of
    return plt.imread(io.BytesIO(print_figure(fig, "png", **kwargs)))


def _full_width_constrained_figure():
    """Two stacked panels at the column's width, with content out to both edges: a two-line
    y label on the left, a legend outside the axes on the right, decade tick labels below."""
    fig, axes = plt.subplots(2, 1, figsize=(COLUMN_WIDTH_IN, 4.0), layout="constrained")
    x = np.logspace(5, 10, 50)
    for ax in axes:
        ax.loglog(x, 5 * x**-0.076, label="$L(N)$")
        ax.set_xlabel("parameters $N$")
        ax.set_ylabel("test loss\n(nats/token)")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def test_a_full_width_figure_crops_to_the_column_with_its_text_whole():
    column_px = round(COLUMN_WIDTH_IN * DPI)  # 704: the book's content column
    with plt.rc_context():
        use_course_style()
        # below constrained layout's margin, so the crop cannot grow a figure past its width
        assert plt.rcParams["savefig.pad_inches"] == PAD_IN
        assert 0 < PAD_IN < plt.rcParams["figure.constrained_layout.w_pad"]
        fig = _full_width_constrained_figure()
        image = _saved_as_the_book_saves_it(fig)
        # the test can fail: matplotlib's default margin (0.1 in) makes this figure too wide
        with plt.rc_context({"savefig.pad_inches": 0.1}):
            assert _saved_as_the_book_saves_it(fig).shape[1] > column_px
        plt.close(fig)
    height, width = image.shape[:2]
    # fills the column (content reaches both edges) without exceeding it: 701 px measured
    assert column_px - 8 <= width <= column_px, width
    # nothing cut at the crop: a white frame at least the margin less a pixel of antialiasing
    frame = int(PAD_IN * DPI) - 1
    assert frame >= 2
    rgb = image[..., :3]
    for edge in (rgb[:frame], rgb[-frame:], rgb[:, :frame], rgb[:, -frame:]):
        assert edge.min() == 1.0, "a glyph or line touches the edge of the cropped image"
    assert rgb[frame:-frame, frame:-frame].min() < 0.5  # ... and it is not blank inside
