from __future__ import annotations

import pytest

from creditgate.domain.instants import InvalidInstant, format_iso, parse_iso


def test_round_trip_keeps_milliseconds_and_writes_z() -> None:
    assert format_iso(parse_iso("2026-08-01T12:34:56.789Z")) == "2026-08-01T12:34:56.789Z"


def test_offsets_are_converted_to_utc() -> None:
    assert format_iso(parse_iso("2026-08-01T02:00:00+02:00")) == "2026-08-01T00:00:00.000Z"


def test_a_bare_date_means_midnight_utc() -> None:
    assert format_iso(parse_iso("2026-02-28")) == "2026-02-28T00:00:00.000Z"


@pytest.mark.parametrize("text", ["2026-08-01T00:00:00", "yesterday", "2026-02-30", ""])
def test_timestamps_without_zone_or_invalid_are_refused(text: str) -> None:
    with pytest.raises(InvalidInstant):
        parse_iso(text)
