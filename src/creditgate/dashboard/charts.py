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
    series: list[list[int]], width: float = 640, height: float = 200, gap: float = 2
) -> Bars:
    """Columns of stacked bars: `series[s][c]` is series s's value in column c (every series as
    long as the first). Negative values are not drawn (usage is never negative)."""
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
    scale = height / top
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
