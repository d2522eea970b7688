"""Chart geometry for the dashboard's inline SVG: values in, shapes out, plain Python.

No web import here (tests/test_architecture.py checks it), so each chart is unit-tested as
numbers -> coordinates. The templates only print these shapes.

Guarantees: every coordinate lies inside the chart's box; a bar's height is proportional to its
value (the tallest stack touches the top); a zero value draws nothing; a stack's segments touch
end to end, in series order from the baseline up; a gauge's arc covers `fraction` of the half
circle, clamped to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PALETTE_SIZE = 8  # series colours: CSS classes s0..s7, then again


def _r(value: float) -> float:
    return round(value, 2)


def _n(value: float) -> str:
    """A coordinate as SVG path text: two decimals at most, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    value: int
    series: int  # the series index (colour: series % PALETTE_SIZE)
    column: int  # the bar (day, period) it belongs to


@dataclass(frozen=True, slots=True)
class Bars:
    width: float
    height: float
    rects: list[Rect]
    top: int  # the value at the top of the box (the tallest stack), 0 when nothing was used
    columns: int


def stacked_bars(
    series: list[list[int]],
    width: float = 640,
    height: float = 200,
    gap: float = 2,
    ceiling: int | None = None,
) -> Bars:
    """Columns of stacked bars: `series[s][c]` is series s's value in column c (every series as
    long as the first). Negative values are not drawn (usage is never negative). `ceiling`: the
    value at the top of the box (an axis' top, at least the tallest stack); default the tallest."""
    columns = len(series[0]) if series else 0
    if any(len(s) != columns for s in series):
        raise ValueError("every series needs one value per column")
    totals = [sum(max(s[c], 0) for s in series) for c in range(columns)]
    top = max(totals, default=0)
    rects: list[Rect] = []
    if columns == 0 or top == 0:
        return Bars(width, height, rects, top, columns)
    slot = width / columns
    bar = max(slot - gap, 1.0)
    scale = height / max(top, ceiling or 0)
    for c in range(columns):
        base = height
        for s, values in enumerate(series):
            value = values[c]
            if value <= 0:
                continue
            h = value * scale
            base -= h
            rects.append(Rect(_r(c * slot), _r(max(base, 0.0)), _r(bar), _r(h), value, s, c))
    return Bars(width, height, rects, top, columns)


def bars(values: list[int], width: float = 640, height: float = 160, gap: float = 4) -> Bars:
    """One bar per value (a single series)."""
    return stacked_bars([values] if values else [], width, height, gap)


@dataclass(frozen=True, slots=True)
class Gauge:
    fraction: float  # of the half circle covered, in [0, 1]
    track: str  # SVG path of the whole half circle
    arc: str  # SVG path of the covered part ("" when nothing is covered)
    width: float
    height: float


def gauge(value: int, whole: int, radius: float = 80, stroke: float = 16) -> Gauge:
    """A half-circle gauge of `value` out of `whole`, filling from the left. A whole of 0 (or
    less) shows an empty gauge; a value beyond the whole a full one; below zero an empty one."""
    fraction = 0.0 if whole <= 0 else min(max(value / whole, 0.0), 1.0)
    pad = stroke / 2
    cx, cy = pad + radius, pad + radius
    start = f"M {_n(cx - radius)} {_n(cy)} A {_n(radius)} {_n(radius)} 0 0 1"
    track = f"{start} {_n(cx + radius)} {_n(cy)}"
    arc = ""
    if fraction > 0:
        angle = math.pi * (1 - fraction)  # from the left end (pi) towards the right end (0)
        arc = f"{start} {_n(cx + radius * math.cos(angle))} {_n(cy - radius * math.sin(angle))}"
    return Gauge(fraction, track, arc, _r(2 * (radius + pad)), _r(radius + 2 * pad))


# --- an axis chart: stacked bars in a plot box with a y-axis and date labels under the bars ---


@dataclass(frozen=True, slots=True)
class Tick:
    value: int
    y: float  # in the plot box (0 at its top)


@dataclass(frozen=True, slots=True)
class Label:
    column: int
    x: float  # the centre of the column's bar, in the plot box


@dataclass(frozen=True, slots=True)
class AxisChart:
    """The SVG's box (width x height) holds a plot box at (left, top) of plot_width x
    plot_height; bars, ticks and labels are in the plot box's coordinates. Labels sit under the
    centre of their bar inside the same SVG, so they stay aligned at any rendered width."""

    width: float
    height: float
    left: float
    top: float
    plot_width: float
    plot_height: float
    bars: Bars
    ticks: list[Tick]
    labels: list[Label]


def nice_step(top: int, count: int = 4) -> int:
    """A round step (1, 2 or 5 times a power of ten) so that `count` steps reach `top`."""
    raw = max(top, 1) / count
    magnitude = 10 ** max(math.floor(math.log10(raw)), 0) if raw >= 1 else 1
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def axis_chart(
    series: list[list[int]],
    width: float = 800,
    height: float = 260,
    left: float = 56,
    bottom: float = 26,
    top: float = 10,
    max_labels: int = 10,
) -> AxisChart:
    """Stacked bars under a y-axis whose top is the first round tick at or above the tallest
    stack; at most `max_labels` column labels, evenly spaced (every k-th column)."""
    plot_width, plot_height = width - left - 8, height - top - bottom
    columns = len(series[0]) if series else 0
    tallest = max((sum(max(s[c], 0) for s in series) for c in range(columns)), default=0)
    step = nice_step(tallest)
    ceiling = step * max(math.ceil(tallest / step), 1)
    shapes = stacked_bars(series, plot_width, plot_height, 2, ceiling)
    ticks = [
        Tick(v, _r(plot_height - v * plot_height / ceiling)) for v in range(0, ceiling + 1, step)
    ]
    every = max(math.ceil(columns / max_labels), 1)
    slot = plot_width / columns if columns else 0.0
    bar = max(slot - 2, 1.0)
    labels = [Label(c, _r(c * slot + bar / 2)) for c in range(0, columns, every)]
    return AxisChart(width, height, left, top, plot_width, plot_height, shapes, ticks, labels)


@dataclass(frozen=True, slots=True)
class Share:
    value: int
    percent: float  # of the largest value, for a horizontal bar (0 draws nothing)


def shares(values: list[int]) -> list[Share]:
    """Horizontal bars, one a row, each with its number beside it: the largest fills the row;
    a small non-zero value still shows (at least 0.5%) so one period cannot hide the others."""
    largest = max(values, default=0)
    if largest <= 0:
        return [Share(v, 0.0) for v in values]
    return [Share(v, 0.0 if v <= 0 else max(_r(v * 100 / largest), 0.5)) for v in values]
