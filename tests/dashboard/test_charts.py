"""The SVG chart helpers: values in, geometry out (creditgate/dashboard/charts.py)."""

from __future__ import annotations

import itertools
import math

import pytest

from creditgate.dashboard import charts


def test_stacked_bars_scale_the_tallest_stack_to_the_box_and_stack_in_series_order() -> None:
    chart = charts.stacked_bars([[10, 0, 5], [30, 0, 5]], width=300, height=100, gap=0)
    assert chart.top == 40
    assert [(r.series, r.column, r.value) for r in chart.rects] == [
        (0, 0, 10),
        (1, 0, 30),
        (0, 2, 5),
        (1, 2, 5),
    ]
    first, second, third, fourth = chart.rects
    assert (first.x, first.width, first.height, first.y) == (0, 100, 25, 75)
    assert (second.height, second.y) == (75, 0)  # on top of the first, touching the top
    assert (third.x, third.height, third.y) == (200, 12.5, 87.5)
    assert (fourth.height, fourth.y) == (12.5, 75)


def test_a_bar_is_proportional_to_its_value() -> None:
    chart = charts.bars([1, 2, 4], width=120, height=80)
    heights = [r.height for r in chart.rects]
    assert heights == [20, 40, 80]
    assert all(r.y + r.height == pytest.approx(80) for r in chart.rects)
    assert [r.width for r in chart.rects] == [36, 36, 36]  # a 40 px slot less the 4 px gap


def test_zero_and_empty_series_draw_nothing() -> None:
    assert charts.stacked_bars([]).rects == []
    assert charts.stacked_bars([[0, 0], [0, 0]]).rects == []
    assert charts.bars([]).rects == []
    assert [r.column for r in charts.bars([0, 3, 0]).rects] == [1]


def test_every_coordinate_lies_in_the_box() -> None:
    chart = charts.stacked_bars([[7, 1, 9, 2], [3, 3, 0, 8], [1, 0, 1, 1]], width=97, height=61)
    for r in chart.rects:
        assert r.x >= 0 and r.x + r.width <= 97 + 0.01
        assert r.y >= 0 and r.y + r.height <= 61 + 0.01


def test_series_of_unequal_length_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per column"):
        charts.stacked_bars([[1, 2], [1]])


def _end(path: str) -> tuple[float, float]:
    parts = path.split()
    return float(parts[-2]), float(parts[-1])


@pytest.mark.parametrize(
    ("value", "whole", "fraction"),
    [(0, 100, 0.0), (25, 100, 0.25), (50, 100, 0.5), (100, 100, 1.0), (150, 100, 1.0)],
)
def test_a_gauge_arc_covers_its_fraction_of_the_half_circle(
    value: int, whole: int, fraction: float
) -> None:
    g = charts.gauge(value, whole, radius=80, stroke=16)
    assert g.fraction == fraction
    assert (g.width, g.height) == (176, 96)
    assert g.track == "M 8 88 A 80 80 0 0 1 168 88"
    if fraction == 0:
        assert g.arc == ""
        return
    x, y = _end(g.arc)
    angle = math.pi * (1 - fraction)
    assert x == pytest.approx(88 + 80 * math.cos(angle), abs=0.01)
    assert y == pytest.approx(88 - 80 * math.sin(angle), abs=0.01)


def test_a_gauge_of_nothing_or_of_a_debt_is_empty() -> None:
    assert charts.gauge(10, 0).arc == ""
    assert charts.gauge(-5, 100).fraction == 0.0


def test_a_nice_step_is_one_two_or_five_times_a_power_of_ten() -> None:
    assert [charts.nice_step(t) for t in (0, 1, 3, 4, 7, 20, 49, 50, 999, 3_000, 12_345)] == [
        1,
        1,
        1,
        1,
        2,
        5,
        20,
        20,
        500,
        1_000,
        5_000,
    ]


def test_the_axis_tops_at_a_round_tick_and_labels_sit_under_their_bars() -> None:
    series = [[12, 0, 5, 0, 0, 3] * 5, [0, 7, 0, 0, 20, 0] * 5]  # 30 days, the tallest 20
    chart = charts.axis_chart(series)
    assert [t.value for t in chart.ticks] == [0, 5, 10, 15, 20]
    assert chart.ticks[0].y == chart.plot_height and chart.ticks[-1].y == 0
    tallest = [r for r in chart.bars.rects if r.value == 20]
    assert tallest and all(r.y == 0 for r in tallest)  # 20 is the axis' top: it touches it
    by_column = {r.column: r for r in chart.bars.rects}
    assert len(chart.labels) <= 10 and chart.labels[0].column == 0
    for label in chart.labels:
        bar = by_column.get(label.column) or chart.bars.rects[0]
        assert abs(label.x - (label.column * chart.plot_width / 30 + bar.width / 2)) < 0.01
    steps = {b.column - a.column for a, b in itertools.pairwise(chart.labels)}
    assert steps == {3}  # evenly spaced: every third day of thirty
    # An axis above the tallest stack: 23 tops at 30 (a round tick), its bar 23/30 of the box.
    (rect,) = charts.axis_chart([[23]]).bars.rects
    plot = charts.axis_chart([[23]]).plot_height
    assert abs(rect.height - plot * 23 / 30) < 0.01


def test_shares_keep_a_small_period_visible_beside_a_dominant_one() -> None:
    found = charts.shares([1_000_000, 3, 0, 500_000])
    assert [s.percent for s in found] == [100.0, 0.5, 0.0, 50.0]
    assert charts.shares([0, 0]) == [charts.Share(0, 0.0), charts.Share(0, 0.0)]
