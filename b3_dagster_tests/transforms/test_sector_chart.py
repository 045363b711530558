"""The sector-weights chart: PNG bytes sized for a Dagster UI dialog, one band per canonical setor_economico."""

from __future__ import annotations

import datetime as dt
import struct

import pandas as pd
import pytest

from b3_dagster.transforms.charts import (
    SECTOR_WEIGHTS_SIZE_PX,
    render_sector_weights_chart,
    sector_weights_figure,
)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def weights() -> pd.DataFrame:
    """Two days, three subsectors in two sectors (hand-made)."""
    rows = [("2025-07-10", "Financeiro", "Intermediários Financeiros", 30.0),
            ("2025-07-10", "Financeiro", "Previdência e Seguros", 10.0),
            ("2025-07-10", "Materiais Básicos", "Mineração", 60.0),
            ("2025-07-11", "Financeiro", "Intermediários Financeiros", 31.0),
            ("2025-07-11", "Financeiro", "Previdência e Seguros", 10.0),
            ("2025-07-11", "Materiais Básicos", "Mineração", 59.0)]
    return pd.DataFrame([(dt.date.fromisoformat(d), s, sub, p) for d, s, sub, p in rows],
                        columns=["Data", "setor_economico", "subsetor", "soma_part"])


def test_the_chart_is_a_png_that_fits_the_ui():
    png = render_sector_weights_chart(weights())
    assert png_size(png) == SECTOR_WEIGHTS_SIZE_PX


def test_one_band_per_economic_sector_summed_over_its_subsectors():
    figure = sector_weights_figure(weights())
    axes = figure.axes[0]
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels == ["sessões com dados (2)", "Financeiro", "Materiais Básicos"]  # legend top-down = the stack
    bands = axes.collections  # stackplot draws one PolyCollection per sector, the largest at the bottom
    assert len(bands) == 2
    assert bands[0].get_paths()[0].vertices[:, 1].max() == pytest.approx(60.0)  # Mineração alone
    assert bands[1].get_paths()[0].vertices[:, 1].max() == pytest.approx(100.0)  # + 40 or 41 of Financeiro


def test_nothing_to_chart_is_an_error():
    with pytest.raises(ValueError, match="no sector weights"):
        render_sector_weights_chart(weights().iloc[0:0])
