"""`key create --expires/--rpm/--metadata`, `key update`, `key rotate` and the listing's new
columns, as scripts use them."""

from __future__ import annotations

from click.testing import CliRunner

from creditgate.cli import main
from creditgate.storage.database import Database
from tests.cli.test_cli import run


def test_keys_expire_rotate_and_update_through_the_cli(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme", "--plan", "hobby")
    key = run(
        database_url,
        "key",
        "create",
        team["id"],
        "--name",
        "ci",
        "--cap",
        "50",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--rpm",
        "30",
        "--metadata",
        '{"owner":"ci"}',
    )
    assert (key["expiresAt"], key["rpm"], key["metadata"]) == (
        "2099-01-01T00:00:00.000Z",
        30,
        {"owner": "ci"},
    )
    updated = run(database_url, "key", "update", key["id"], "--no-rpm", "--metadata", '{"a":1}')
    assert (updated["rpm"], updated["metadata"], updated["expiresAt"]) == (
        None,
        {"a": 1},
        "2099-01-01T00:00:00.000Z",
    )
    cleared = run(database_url, "key", "update", key["id"], "--no-expiry", "--clear-metadata")
    assert (cleared["expiresAt"], cleared["metadata"]) == (None, None)
    rotated = run(database_url, "key", "rotate", key["id"], "--overlap-seconds", "120")
    assert rotated["name"] == "ci" and rotated["cap"] == 50 and rotated["key"].startswith("fc-")
    assert rotated["rotatedFrom"] == key["id"]
    assert rotated["replaced"]["name"] == f"ci (rotated {key['id'][-8:]})"
    assert rotated["replaced"]["expiresAt"] is not None
    listed = {k["name"]: k for k in run(database_url, "key", "list", team["id"])}
    assert set(listed) == {"ci", f"ci (rotated {key['id'][-8:]})"}
    assert "lastUsedAt" in listed["ci"]


def test_bad_key_options_are_refused_with_a_reason(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme")
    for args, reason in (
        (["--expires", "2001-01-01T00:00:00Z"], "expiresAt must lie in the future"),
        (["--expires", "tomorrow"], "--expires"),
        (["--metadata", "[1]"], "metadata must be a JSON object"),
        (["--metadata", "{"], "--metadata: not JSON"),
        (["--rpm", "0"], "rpm must be a whole number"),
    ):
        refused = run(database_url, "key", "create", team["id"], *args, ok=False)
        assert reason in refused["error"], (args, refused)
    key = run(database_url, "key", "create", team["id"])
    both = run(database_url, "key", "update", key["id"], "--rpm", "3", "--no-rpm", ok=False)
    assert "not both" in both["error"]
    nothing = run(database_url, "key", "update", key["id"], ok=False)
    assert "nothing to update" in nothing["error"]


def test_the_key_listing_shows_expiry_rpm_and_last_use(database_url: str, db: Database) -> None:
    team = run(database_url, "team", "create", "acme")
    run(database_url, "key", "create", team["id"], "--name", "ci", "--rpm", "7")
    result = CliRunner().invoke(main, ["key", "list", team["id"], "--database-url", database_url])
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0]
    assert all(word in header for word in ("rpm", "expires", "last used"))
