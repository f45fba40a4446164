"""The book's figure style (scalinglab.figures)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scalinglab.figures import (  # noqa: E402
    COLUMN_WIDTH_IN,
    CYCLE,
    DPI,
    MIN_FONT_PT,
    OKABE_ITO,
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
