"""The outcome chart of one instrument's series, drawn on the server as inline SVG (nothing is
fetched when the page is viewed). The score bands are shaded, each standing assessment is a point
on a line in time order, and the SVG carries a title and a description for screen readers; the
page shows the same numbers as a table beside it."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup, escape

from service.domain.instruments import Direction
from service.records.assessments import Series

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 24, 28, 44
LINE = "#1f4e79"  # dark blue on white: contrast above 8:1
TEXT = "#1d1d1d"
BAND_FILLS = ("#f2f2f2", "#e4e4e4")


def _x(moment: datetime, first: datetime, last: datetime) -> float:
    span = (last - first).total_seconds()
    inner = WIDTH - LEFT - RIGHT
    if span <= 0:
        return LEFT + inner / 2
    return LEFT + inner * (moment - first).total_seconds() / span


def _y(value: int, low: int, high: int) -> float:
    inner = HEIGHT - TOP - BOTTOM
    return TOP + inner * (1 - (value - low) / ((high - low) or 1))


def describe(series: Series) -> str:
    """The chart in words: what a screen reader announces."""
    instrument = series.instrument
    points = series.points
    better = "lower" if instrument.direction is Direction.HIGHER_IS_WORSE else "higher"
    first, last = points[0], points[-1]
    text = (
        f"{instrument.title}: {len(points)} assessment{'s' if len(points) != 1 else ''} "
        f"from {first.assessment.completed_at.date()} to {last.assessment.completed_at.date()}; "
        f"baseline {first.assessment.total} ({first.assessment.band_display}), "
        f"latest {last.assessment.total} ({last.assessment.band_display}); {better} is better."
    )
    return text


def outcome_svg(series: Series, chart_id: str) -> Markup:
    """One instrument's chart; ``chart_id`` makes the title and description ids unique on the page."""
    instrument = series.instrument
    low, high = instrument.total_range
    moments = [p.assessment.completed_at for p in series.points]
    first, last = min(moments), max(moments)
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-labelledby="{title_id} {desc_id}" class="outcome-chart">',
        f'<title id="{title_id}">{escape(instrument.title)} totals over time</title>',
        f'<desc id="{desc_id}">{escape(describe(series))}</desc>',
    ]
    for i, band in enumerate(sorted(instrument.bands, key=lambda b: b.low)):
        top, bottom = _y(band.high, low, high), _y(band.low, low, high)
        parts.append(
            f'<rect x="{LEFT}" y="{top:.1f}" width="{WIDTH - LEFT - RIGHT}" height="{max(bottom - top, 1):.1f}" '
            f'fill="{BAND_FILLS[i % 2]}"><title>{escape(band.display)} ({band.low}-{band.high})</title></rect>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{bottom:.1f}" text-anchor="end" font-size="11" fill="{TEXT}">{band.low}</text>'
        )
    parts.append(f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" font-size="11" fill="{TEXT}">{high}</text>')
    axis_y = HEIGHT - BOTTOM
    parts.append(f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" stroke="{TEXT}"/>')
    parts.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{axis_y}" stroke="{TEXT}"/>')
    coords = [(_x(p.assessment.completed_at, first, last), _y(p.assessment.total, low, high), p) for p in series.points]
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    for x, y, point in coords:
        a = point.assessment
        label = f"{a.completed_at.date()}: {a.total} ({a.band_display})"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{LINE}"><title>{escape(label)}</title></circle>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 18}" font-size="11" fill="{TEXT}">{first.date()}</text>')
    if last != first:
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 18}" text-anchor="end" font-size="11" '
            f'fill="{TEXT}">{last.date()}</text>'
        )
    parts.append(f'<text x="{LEFT}" y="16" font-size="12" fill="{TEXT}">total score ({low}-{high})</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value interpolated above is a number or escaped
