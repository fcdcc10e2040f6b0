"""The report charts: a legend too long for one row wraps instead of running off the image, and
the image grows rather than the legend covering the axis labels."""

import imageio.v3 as iio
import numpy as np

from a3d_core.eval.charts import COLOURS, grouped_bars


def swatch_rows(png: bytes, colour) -> list[int]:
    """The image rows holding pixels of ``colour``."""
    image = iio.imread(png)
    return sorted(set(np.nonzero((image[..., :3] == colour).all(axis=-1))[0].tolist()))


def test_every_series_of_a_long_legend_gets_its_swatch_inside_the_image():
    nan = (float("nan"),) * 3  # no bars: only the legend's swatches carry the series' colours
    names = [f"a rather long series name number {k}" for k in range(5)]
    png = grouped_bars("t", ["g"], {name: [nan] for name in names})
    rows = [swatch_rows(png, COLOURS[k]) for k in range(5)]
    assert all(rows), "a swatch fell outside the image"
    assert min(rows[-1]) > max(rows[0])  # the last series went to a lower row


def test_a_short_legend_stays_on_one_row():
    nan = (float("nan"),) * 3
    png = grouped_bars("t", ["g"], {"a": [nan], "b": [nan]})
    assert swatch_rows(png, COLOURS[0]) == swatch_rows(png, COLOURS[1])


def test_a_legend_of_many_rows_makes_the_image_taller_instead_of_covering_the_axis_labels():
    nan = (float("nan"),) * 3
    names = [f"a rather long series name number {k}" for k in range(8)]  # one per row at this width
    png = grouped_bars("t", ["g"], {name: [nan] for name in names})
    image = iio.imread(png)
    plot_bottom = image.shape[0] - 70 - 14 * (len(names) - 2)  # the box keeps its 290 pixels of height
    assert image.shape[0] > 360 and plot_bottom == 290
    first_swatch = min(swatch_rows(png, COLOURS[0]))
    assert first_swatch >= plot_bottom + 36  # below the x labels (and a histogram's axis title)
    assert all(swatch_rows(png, COLOURS[k]) for k in range(len(names)))
