"""The outcome report's charts, drawn on the server by matplotlib (Agg, no display) as PNG bytes.

Only matplotlib's object API is used (a Figure with its own Agg canvas, no pyplot): no global
state, so requests may draw at the same time in worker threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

BAR = "#2f6f8f"
WIDTH_INCHES = 7.0
DPI = 100


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], unit: str) -> bytes:
    """Horizontal bars, one per label; a suppressed value (None) gets no bar and the word instead."""
    height = 1.4 + 0.45 * max(len(labels), 1)
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(labels)))
    shown = [v if v is not None else 0.0 for v in values]
    bars = axes.barh(positions, shown, color=BAR)
    axes.set_yticks(positions, labels=list(labels))
    axes.invert_yaxis()
    figure.suptitle(title, fontsize=11, x=0.02, ha="left")
    axes.set_xlabel(unit)
    axes.axvline(0, color="#444444", linewidth=0.8)
    span = max((abs(v) for v in shown), default=0.0) or 1.0
    lowest, highest = min(min(shown, default=0.0), 0.0), max(max(shown, default=0.0), 0.0)
    axes.set_xlim(lowest - 0.35 * span if lowest < 0 else 0.0, highest + 0.35 * span)
    for bar, value in zip(bars, values, strict=True):
        y = bar.get_y() + bar.get_height() / 2
        text = "suppressed" if value is None else f"{value:g}"
        x = 0.0 if value is None else value
        left = value is not None and value < 0
        axes.annotate(
            text,
            (x, y),
            xytext=(-4 if left else 4, 0),
            textcoords="offset points",
            va="center",
            ha="right" if left else "left",
            fontsize=9,
            color="#555555" if value is None else "#1d1d1d",
        )
    if not labels:
        axes.text(0.5, 0.5, "no rows", transform=axes.transAxes, ha="center")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
