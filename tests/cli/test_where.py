"""Every command names its database by absolute path, and `migrate` creates a new SQLite file
only when told to: an operator in the wrong directory gets a refusal that names where they are,
not a second, empty ledger (cli/where.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner, Result

from creditgate.cli import main, where
from creditgate.storage.migrate import shipped_head

# Unset while a command runs, and restored after: `serve` exports its flags to its workers.
NO_ENV: dict[str, str | None] = {
    name: None
    for name in {
        *(n for n in os.environ if n.startswith("CREDITGATE_")),
        *(f"CREDITGATE_{n}" for n in ("HOST", "PORT", "WORKERS", "DATABASE_URL")),
    }
}

HEAD = shipped_head()


def invoke(*args: str, stdin: str | None = None, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env={**NO_ENV, **env})


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, as an operator's wrong one."""
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_migrate_refuses_to_create_a_new_database_unless_told_to(here: Path) -> None:
    path = here / ".creditgate" / "creditgate.db"
    expected = (
        f"no database at {path}: `creditgate migrate --yes` creates a new, empty one there; if "
        "your ledger is elsewhere, run from its directory or name it with --database-url or "
        "CREDITGATE_DATABASE_URL"
    )
    plain = invoke("migrate")
    assert (plain.exit_code, plain.stdout) == (1, "")
    assert plain.stderr == f"error: {expected}\n"  # the path, absolute: no `using` line needed
    as_json = invoke("migrate", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {"success": False, "error": expected, "status": 409}
    assert list(here.iterdir()) == []  # not even the folder

    made = invoke("migrate", "--yes")
    assert made.exit_code == 0, made.output
    assert made.stdout == f"schema created: revision {HEAD} (sqlite:///{path})\n"
    again = invoke("migrate")  # it exists now: an upgrade needs no --yes
    assert again.stdout == f"schema already up to date: revision {HEAD} (sqlite:///{path})\n"


@pytest.mark.parametrize(("answer", "created"), [("y\n", True), ("n\n", False), ("\n", False)])
def test_on_a_terminal_migrate_asks_first(
    answer: str, created: bool, here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(where, "stdin_is_a_terminal", lambda: True)
    path = here / "ledger.db"
    done = invoke("migrate", "--database-url", "sqlite:///ledger.db", stdin=answer)
    assert done.stderr.startswith(
        f"no database at {path}; if your ledger is elsewhere, run from "
        "its directory or name it with --database-url or CREDITGATE_DATABASE_URL.\n"
        "Create a new, empty ledger there? [y/N]: "
    ), done.stderr
    assert path.exists() is created
    if created:
        assert (done.exit_code, done.stdout) == (
            0,
            f"schema created: revision {HEAD} (sqlite:///{path})\n",
        )
    else:
        assert done.exit_code == 1
        assert done.stderr.endswith(f"error: nothing created at {path}\n")


def test_a_relative_path_is_named_absolute_in_output_and_errors(here: Path) -> None:
    path = here / "data" / "ledger.db"
    relative = "sqlite:///data/ledger.db"
    missing = invoke("team", "list", "--database-url", relative)
    assert missing.exit_code == 1
    assert missing.stderr.splitlines() == [
        f"using sqlite:///{path}",
        f"error: no database at sqlite:///{path} ({path} does not exist): if the ledger is "
        "elsewhere, run from its directory or name it (--database-url or "
        "CREDITGATE_DATABASE_URL); `creditgate migrate` creates a new, empty one here",
    ]
    made = invoke("migrate", "--yes", "--json", CREDITGATE_DATABASE_URL=relative)
    assert json.loads(made.stdout)["data"]["database"] == f"sqlite:///{path}"
    assert made.stderr == f"using sqlite:///{path}\n"
    listed = invoke("team", "list", "--json", CREDITGATE_DATABASE_URL=f"sqlite:///{path}")
    assert (listed.exit_code, listed.stderr) == (0, "")  # absolute as given: named by the caller


def test_serve_names_a_new_database_and_hands_its_workers_the_absolute_path(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def run(*_args: Any, **_kwargs: Any) -> None:
        seen.append(os.environ["CREDITGATE_DATABASE_URL"])

    monkeypatch.setattr(uvicorn, "run", run)
    path = here / "ledger.db"
    first = invoke("serve", CREDITGATE_DATABASE_URL="sqlite:///ledger.db")
    assert first.exit_code == 0, first.output
    assert first.stderr.splitlines()[:2] == [
        f"using sqlite:///{path}",
        f"created a new, empty database at {path}",
    ]
    second = invoke("serve", "--database-url", "sqlite:///ledger.db")
    assert second.stderr.splitlines()[0] == f"using sqlite:///{path}"
    assert "no database" not in second.stderr
    assert seen == [f"sqlite:///{path}"] * 2


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///a/b.db", "sqlite:///{cwd}/a/b.db"),
        ("sqlite+pysqlite:///b.db?mode=ro", "sqlite+pysqlite:///{cwd}/b.db?mode=ro"),
        ("sqlite:////abs/b.db", "sqlite:////abs/b.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("not a url", "not a url"),
    ],
)
def test_absolute_touches_only_a_relative_sqlite_path(url: str, expected: str, here: Path) -> None:
    assert where.absolute(url) == expected.format(cwd=here)
