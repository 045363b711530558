"""Charts: pure frame -> PNG functions, on real refined rows (index) and a real B3 portfolio (sectors)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from b3_dagster.transforms.charts import (
    DPI,
    WIDTH_INCHES,
    close_chart_figure,
    markdown_image,
    render_close_chart,
    render_sector_chart,
    sector_chart_figure,
)
from b3_dagster.replay.b3_api import recorded_days
from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
from b3_dagster.transforms.index_features import index_features
from b3_dagster.transforms.sector_refine import refine_portfolio
from b3_dagster_tests.helpers import bars, drawn_outside

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def refined_2025() -> pd.DataFrame:
    raw = bars()
    return index_features(raw[raw["date"].map(lambda d: d.year) == 2025])


def sectors_of(date: str) -> pd.DataFrame:
    recording = next(r for r in recorded_days() if r.date == date)
    page = parse_page(json.dumps(recording.document()), page=1, language=recording.language)
    return refine_portfolio(rows_to_frame(page.rows), dt.date.fromisoformat(date))


def decode(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_SIGNATURE)
    return mpimg.imread(io.BytesIO(png), format="png")


def test_close_chart_draws_close_averages_and_marks_every_spike():
    refined = refined_2025()
    figure = close_chart_figure(refined)
    prices = figure.axes[0]
    lines = {line.get_label(): line for line in prices.get_lines()}
    np.testing.assert_array_equal(lines["Fechamento"].get_ydata(), refined["preco_fechamento"])
    np.testing.assert_array_equal(lines["Média móvel 5 sessões"].get_ydata(), refined["media_movel_5d"])
    np.testing.assert_array_equal(lines["Média móvel 20 sessões"].get_ydata(), refined["media_movel_20d"])
    markers = prices.collections[0].get_offsets()
    spikes = refined[refined["volatilidade_pico"] == 1]
    assert len(markers) == len(spikes) > 0
    np.testing.assert_array_equal(np.asarray(markers)[:, 1], spikes["preco_fechamento"])


def test_close_chart_png_is_a_real_image_of_the_figure_size():
    image = decode(render_close_chart(refined_2025()))
    assert image.shape[:2] == (int(5.2 * DPI), int(WIDTH_INCHES * DPI))
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_sector_chart_has_one_bar_per_sector_of_the_real_portfolio():
    sectors = sectors_of("2025-04-07")
    figure = sector_chart_figure(sectors, "2025-04-07")
    axes = figure.axes[0]
    widths = sorted(patch.get_width() for patch in axes.patches)
    assert len(axes.patches) == sectors["Setor"].nunique()
    assert widths == sorted(sectors["soma_part"])
    assert "2025-04-07" in figure.get_suptitle()
    assert sum(widths) == pytest.approx(100.0, abs=0.01)  # B3's weights add up to 100%
    image = decode(render_sector_chart(sectors, "2025-04-07"))
    assert image[..., :3].std() > 0.05


def test_markdown_image_embeds_the_png_bytes():
    png = render_sector_chart(sectors_of("2022-12-08"), "2022-12-08")
    text = markdown_image(png, "sectors")
    assert text.startswith("![sectors](data:image/png;base64,")
    assert base64.b64decode(text[len("![sectors](data:image/png;base64,"):-1]) == png


@pytest.mark.parametrize("render", [lambda f: render_close_chart(f), lambda f: render_sector_chart(f, "2025-01-02")],
                         ids=["close", "sectors"])
def test_no_rows_is_an_error_not_an_empty_picture(render):
    with pytest.raises(ValueError, match="no "):
        render(pd.DataFrame(columns=["data", "Setor", "soma_part"]))


def test_both_charts_fit_the_ui_markdown_dialog_unclipped():
    """Dagster shows a chart in a dialog about 900 px wide: a wider PNG loses its right edge (March 2026 did)."""
    close = decode(render_close_chart(refined_2025()))
    sector = decode(render_sector_chart(sectors_of("2025-04-07"), "2025-04-07"))
    assert close.shape[1] <= 900 and sector.shape[1] <= 900
    assert close.shape[1] >= 700, "still wide enough to read a year of sessions"
    # and nothing is drawn past the picture's edges (the sector chart's title, centred over axes that its long
    # sector names push right, lost "100,0%)")
    assert drawn_outside(sector_chart_figure(sectors_of("2025-04-07"), "2025-04-07")) == {}
    assert drawn_outside(close_chart_figure(refined_2025())) == {}


def test_the_close_chart_with_the_assets_longest_title_shows_all_of_it():
    # the title ibov_index_chart gives it names the sources of the closes: on one line it ran past the picture's
    # right edge ("... médias móveis (13/03/2025 a 1")
    figure = close_chart_figure(refined_2025(), title="IBOVESPA: fechamento (B3 oficial em 0 sessões, Yahoo em 250) "
                                                       "e médias móveis")
    assert drawn_outside(figure) == {}
    assert figure.bbox.width <= 900
