"""Charts as PNG bytes: pure functions from a DataFrame to an image (no I/O, no dagster, no global pyplot state).

Figures are drawn with matplotlib's object API on the Agg canvas, so rendering works headless and in threads.
``markdown_image`` wraps a PNG in a base64 data URI: Dagster has no image metadata type, but its Markdown metadata
renders such an image in the UI.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from typing import TYPE_CHECKING

import pandas as pd

from b3_dagster.model import (
    CLOSE,
    DATA,
    DATE,
    ECONOMIC_SECTOR,
    MA_LONG,
    MA_SHORT,
    PART_SUM,
    SECTOR,
    VOL_ZSCORE,
    VOLATILITY_SPIKE,
)
from b3_dagster.transforms.index_features import SPIKE_THRESHOLD

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
# Widths in inches at DPI: 8 in is 880 px, which fits Dagster's Markdown dialog (about 900 px of content) unclipped;
# 11 in (1210 px) lost its right edge there.
WIDTH_INCHES = 8.0


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas. matplotlib is imported here, not at the top: every process that loads the
    code location (code server, each run and step worker, `dg check defs`) imports this module, and matplotlib
    takes about 1 s of CPU to import; only the chart steps draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _thousands(value: float, _position: int) -> str:
    return f"{value:,.0f}".replace(",", ".")  # pt-BR grouping: 185.205


def _style_prices(prices, title: str, dates: pd.Series) -> None:
    """The price panel of the index charts: title with the span, pt-BR points, grid, legend."""
    from matplotlib.ticker import FuncFormatter

    # the span on a line of its own: with the sources of the closes in it, the title is too long for one line of the
    # dialog-wide picture (the first line of an 8 in figure held "... médias móveis (13/03/2025 a 1")
    prices.set_title(f"{title}\n{dates.min():%d/%m/%Y} a {dates.max():%d/%m/%Y}", fontsize=12)
    prices.set_ylabel("Pontos")
    prices.yaxis.set_major_formatter(FuncFormatter(_thousands))
    prices.grid(alpha=0.3)
    prices.legend(loc="upper left", fontsize=8)


def _zscore_panel(zscores, dates: pd.Series, rows: pd.DataFrame, spikes: pd.Series, **bar_args) -> None:
    """The volatility z-score panel of the index charts: a bar a day (spikes red) under the spike threshold."""
    zscores.bar(dates, rows[VOL_ZSCORE].fillna(0), color=["#d62728" if s else "#8da0cb" for s in spikes], width=0.8,
                **bar_args)
    zscores.axhline(SPIKE_THRESHOLD, color="#d62728", linestyle="--", linewidth=0.8)
    zscores.set_ylabel("z-score vol.")
    zscores.grid(alpha=0.3)


def close_chart_figure(frame: pd.DataFrame, title: str = "IBOVESPA: fechamento e médias móveis") -> Figure:
    """Close with its 5- and 20-session moving averages; volatility spikes (volatilidade_pico = 1) marked on the
    close line; below, the volatility z-score with its 1.5 threshold."""
    if frame.empty:
        raise ValueError("no rows to chart")
    rows = frame.sort_values(DATA)
    dates = pd.to_datetime(rows[DATA])
    figure = _new_figure((WIDTH_INCHES, 5.2))
    prices, zscores = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    prices.plot(dates, rows[CLOSE], color="#1f3b73", linewidth=1.6, label="Fechamento")
    prices.plot(dates, rows[MA_SHORT], color="#f28e2b", linewidth=1.1, label="Média móvel 5 sessões")
    prices.plot(dates, rows[MA_LONG], color="#59a14f", linewidth=1.1, label="Média móvel 20 sessões")
    spikes = rows[VOLATILITY_SPIKE] == 1
    prices.scatter(dates[spikes], rows.loc[spikes, CLOSE], color="#d62728", marker="^", s=60, zorder=3,
                   label=f"Pico de volatilidade (z > {SPIKE_THRESHOLD})")
    _style_prices(prices, title, dates)
    _zscore_panel(zscores, dates, rows, spikes)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def sector_chart_figure(frame: pd.DataFrame, day: dt.date | str) -> Figure:
    """Participation of each sector in the index on ``day`` (``Setor``, ``soma_part``), largest on top."""
    if frame.empty:
        raise ValueError(f"no sectors to chart for {day}")
    rows = frame.sort_values(PART_SUM, ascending=True)
    figure = _new_figure((WIDTH_INCHES, max(3.0, 0.3 * len(rows) + 1.2)))
    axes = figure.subplots()
    bars = axes.barh(rows[SECTOR], rows[PART_SUM], color="#4e79a7")
    axes.bar_label(bars, labels=[f"{value:.2f}%".replace(".", ",") for value in rows[PART_SUM]], padding=3,
                   fontsize=8)
    axes.set_xlabel("Participação no IBOV (%)")
    total = f"{rows[PART_SUM].sum():.1f}".replace(".", ",")
    # over the whole picture: the long sector names push the axes right, and a title centred over them ran past the
    # right edge ("(soma 100,0%" cut)
    figure.suptitle(f"IBOV: participação por setor em {day} (soma {total}%)", fontsize=12)
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


SECTOR_WEIGHTS_SIZE_PX = (900, 540)  # fits a Dagster UI metadata dialog


def sector_weights_figure(frame: pd.DataFrame, title: str = "IBOV: participação por setor econômico") -> Figure:
    """Weight of each canonical ``setor_economico`` in the index over time, stacked (they add up to 100%).

    ``frame`` has ``Data``, ``setor_economico`` and ``soma_part`` (the refined table: one row per subsector and day,
    summed here per sector). Sessions with data are marked on the x axis: between them the areas are interpolated,
    and the recorded history has gaps of weeks.
    """
    if frame.empty:
        raise ValueError("no sector weights to chart")
    table = (frame.groupby([DATE, ECONOMIC_SECTOR])[PART_SUM].sum().unstack(ECONOMIC_SECTOR).fillna(0.0)
             .sort_index())
    table = table[table.mean().sort_values(ascending=False).index]  # the largest sector at the bottom
    dates = pd.to_datetime(pd.Series(table.index))
    width, height = SECTOR_WEIGHTS_SIZE_PX
    figure = _new_figure((width / DPI, height / DPI))
    axes = figure.subplots()
    palette = [figure_color for figure_color in _palette(len(table.columns))]
    axes.stackplot(dates, [table[column].to_numpy() for column in table.columns], labels=list(table.columns),
                   colors=palette, alpha=0.9, linewidth=0.3, edgecolor="white")
    axes.plot(dates, [100.0] * len(dates), linestyle="none", marker="|", color="#333333", markersize=6,
              label=f"sessões com dados ({len(dates)})")
    axes.set_ylim(0, 101)
    axes.set_xlim(dates.min(), dates.max())
    axes.set_ylabel("Participação no IBOV (%)")
    axes.set_title(f"{title} ({dates.min():%d/%m/%Y} a {dates.max():%d/%m/%Y})", fontsize=11)
    axes.grid(axis="y", alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    axes.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5,
                frameon=False)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def _palette(count: int) -> list:
    from matplotlib import colormaps

    colors = colormaps["tab20"].colors
    return [colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20] for i in range(count)]


def render_sector_weights_chart(frame: pd.DataFrame) -> bytes:
    return png_bytes(sector_weights_figure(frame))


# ---- anomaly score (issue 14): the IsolationForest's anomalous days beside the volatility z-score spikes ----------
def anomaly_chart_figure(refined: pd.DataFrame, scores: pd.DataFrame,
                         title: str = "IBOVESPA: anomalias (Isolation Forest) e picos de volatilidade") -> Figure:
    """Above: the close, with the anomalous days (``anomalia`` = 1) marked by a cross and the volatility spikes
    (``volatilidade_pico`` = 1) by a triangle. Below: the z-score bars (spikes in red) and the anomaly score.
    ``scores`` holds ``data``, ``anomalia_score`` and ``anomalia`` (transforms/anomaly.py); days it lacks are
    drawn without a score."""
    from b3_dagster.model import ANOMALY_FLAG, ANOMALY_SCORE  # appended section: keeps the module's head untouched

    if refined.empty:
        raise ValueError("no rows to chart")
    rows = refined.sort_values(DATA).merge(scores[[DATA, ANOMALY_SCORE, ANOMALY_FLAG]], on=DATA, how="left")
    dates = pd.to_datetime(rows[DATA])
    anomalous = rows[ANOMALY_FLAG].fillna(0).astype(int) == 1
    spikes = rows[VOLATILITY_SPIKE] == 1
    figure = _new_figure((WIDTH_INCHES, 6.0))  # the dialog's width, as the other charts (11 in lost its right edge)
    prices, zscores = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1.3]})
    prices.plot(dates, rows[CLOSE], color="#1f3b73", linewidth=1.3, label="Fechamento")
    prices.scatter(dates[spikes], rows.loc[spikes, CLOSE], color="#f28e2b", marker="^", s=45, zorder=3,
                   label=f"Pico de volatilidade (z > {SPIKE_THRESHOLD})")
    prices.scatter(dates[anomalous], rows.loc[anomalous, CLOSE], color="#d62728", marker="X", s=60, zorder=4,
                   label="Anomalia (Isolation Forest)")
    _style_prices(prices, title, dates)
    _zscore_panel(zscores, dates, rows, spikes, label="z-score vol.")
    zscores.scatter(dates[anomalous], rows.loc[anomalous, VOL_ZSCORE].fillna(0), color="#d62728", marker="X", s=40,
                    zorder=3, label="Anomalia")
    score_axis = zscores.twinx()
    score_axis.plot(dates, rows[ANOMALY_SCORE], color="#59a14f", linewidth=0.9, label="Score de anomalia")
    score_axis.set_ylabel("score")
    zscores.legend(loc="upper left", fontsize=7)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure


def render_anomaly_chart(refined: pd.DataFrame, scores: pd.DataFrame) -> bytes:
    return png_bytes(anomaly_chart_figure(refined, scores))
