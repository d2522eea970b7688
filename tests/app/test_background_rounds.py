"""The server's background rounds (sweeper, follower) report a database outage in one line."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from creditgate.app.asgi import _round_failed


def test_an_outage_is_one_line_and_a_bug_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    locked = sa_exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
    with caplog.at_level(logging.ERROR, logger="creditgate.http"):
        _round_failed("reservation sweep", locked)
        _round_failed("job follower round", ValueError("a bug"))
    outage, bug = caplog.records
    assert outage.getMessage() == (
        "reservation sweep failed: the database is unavailable (OperationalError)"
    )
    assert outage.exc_info is None
    assert bug.getMessage() == "job follower round failed"
    assert bug.exc_info is not None and bug.exc_info[0] is ValueError
