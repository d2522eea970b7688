"""Every domain outcome has exactly one HTTP status (the mapping is complete)."""

from __future__ import annotations

from creditgate.domain import errors
from creditgate.domain.errors import STATUS


def all_subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    for sub in list(found):
        found |= all_subclasses(sub)
    return found


def test_every_ledger_error_maps_to_a_status() -> None:
    assert all_subclasses(errors.LedgerError) == set(STATUS)
    assert STATUS[errors.InsufficientCredits] == 402
    assert STATUS[errors.IdempotencyConflict] == 409
    assert STATUS[errors.TeamSuspended] == 403
