"""A SQLite ledger that creditgate creates is readable by its owner only: it holds key hashes
and every team's money (found by an outside tester: 0644, its -wal and -shm too)."""

from __future__ import annotations

from pathlib import Path

from creditgate.storage.database import Database
from creditgate.storage.migrate import upgrade


def test_a_new_sqlite_ledger_and_its_journal_are_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "ledger.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
    db.dispose()
    assert modes["ledger.db"] == 0o600
    assert all(mode == 0o600 for name, mode in modes.items() if name.startswith("ledger.db")), modes
