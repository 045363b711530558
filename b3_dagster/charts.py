"""Charts as PNG bytes: pure functions from a DataFrame to an image (no I/O, no dagster, no global pyplot state).

Figures are drawn with matplotlib's object API on the Agg canvas, so rendering works headless and in threads.
``markdown_image`` wraps a PNG in a base64 data URI: Dagster has no image metadata type, but its Markdown metadata
renders such an image in the UI.
"""

from __future__ import annotations

import base64
import datetime as dt
import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from b3_dagster.model import PART_SUM, SECTOR
from b3_dagster.transforms.index_features import (
    CLOSE,
    DATA,
    MA_LONG,
    MA_SHORT,
    SPIKE_THRESHOLD,
    VOL_ZSCORE,
    VOLATILITY_SPIKE,
)

DPI = 110
# Widths in inches at DPI: both charts are 880 px wide, so they fit Dagster's Markdown dialog (about 900 px of
# content) unclipped; 11 in (1210 px) lost its right edge there.
WIDTH_INCHES = 8.0


def _thousands(value: float, _position: int) -> str:
    return f"{value:,.0f}".replace(",", ".")  # pt-BR grouping: 185.205


def close_chart_figure(frame: pd.DataFrame, title: str = "IBOVESPA: fechamento e médias móveis") -> Figure:
    """Close with its 5- and 20-session moving averages; volatility spikes (volatilidade_pico = 1) marked on the
    close line; below, the volatility z-score with its 1.5 threshold."""
    if frame.empty:
        raise ValueError("no rows to chart")
    rows = frame.sort_values(DATA)
    dates = pd.to_datetime(rows[DATA])
    figure = Figure(figsize=(WIDTH_INCHES, 5.2), dpi=DPI)
    FigureCanvasAgg(figure)
    prices, zscores = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    prices.plot(dates, rows[CLOSE], color="#1f3b73", linewidth=1.6, label="Fechamento")
    prices.plot(dates, rows[MA_SHORT], color="#f28e2b", linewidth=1.1, label="Média móvel 5 sessões")
    prices.plot(dates, rows[MA_LONG], color="#59a14f", linewidth=1.1, label="Média móvel 20 sessões")
    spikes = rows[VOLATILITY_SPIKE] == 1
    prices.scatter(dates[spikes], rows.loc[spikes, CLOSE], color="#d62728", marker="^", s=60, zorder=3,
                   label=f"Pico de volatilidade (z > {SPIKE_THRESHOLD})")
    prices.set_title(f"{title} ({dates.min():%d/%m/%Y} a {dates.max():%d/%m/%Y})", fontsize=12)
    prices.set_ylabel("Pontos")
    prices.yaxis.set_major_formatter(FuncFormatter(_thousands))
    prices.grid(alpha=0.3)
    prices.legend(loc="upper left", fontsize=8)
    zscores.bar(dates, rows[VOL_ZSCORE].fillna(0), color=["#d62728" if s else "#8da0cb" for s in spikes], width=0.8)
    zscores.axhline(SPIKE_THRESHOLD, color="#d62728", linestyle="--", linewidth=0.8)
    zscores.set_ylabel("z-score vol.")
    zscores.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def sector_chart_figure(frame: pd.DataFrame, day: dt.date | str) -> Figure:
    """Participation of each sector in the index on ``day`` (``Setor``, ``soma_part``), largest on top."""
    if frame.empty:
        raise ValueError(f"no sectors to chart for {day}")
    rows = frame.sort_values(PART_SUM, ascending=True)
    figure = Figure(figsize=(WIDTH_INCHES, max(3.0, 0.3 * len(rows) + 1.2)), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    bars = axes.barh(rows[SECTOR], rows[PART_SUM], color="#4e79a7")
    axes.bar_label(bars, labels=[f"{value:.2f}%".replace(".", ",") for value in rows[PART_SUM]], padding=3,
                   fontsize=8)
    axes.set_xlabel("Participação no IBOV (%)")
    total = f"{rows[PART_SUM].sum():.1f}".replace(".", ",")
    axes.set_title(f"IBOV: participação por setor em {day} (soma {total}%)", fontsize=12)
    axes.set_xlim(0, rows[PART_SUM].max() * 1.15)
    axes.tick_params(axis="y", labelsize=8)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def png_bytes(figure: Figure) -> bytes:
    sink = io.BytesIO()
    figure.savefig(sink, format="png", metadata={"Software": None})
    return sink.getvalue()


def render_close_chart(frame: pd.DataFrame) -> bytes:
    return png_bytes(close_chart_figure(frame))


def render_sector_chart(frame: pd.DataFrame, day: dt.date | str) -> bytes:
    return png_bytes(sector_chart_figure(frame, day))


def markdown_image(png: bytes, alt: str = "chart") -> str:
    """Markdown that shows ``png`` inline (a base64 data URI)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
