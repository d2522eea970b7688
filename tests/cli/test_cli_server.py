"""The CLI through a running server (--server, a profile): the same commands print the same
objects and text as on the database itself, and a server that cannot be reached or refuses the
token is one clear line and exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from creditgate.cli import main
from creditgate.storage.database import Database
from tests.server import free_port, live_server

TOKEN = "cli-server-admin-token-0123456789"
# Nothing of the machine's own configuration reaches these commands.
CLEAN: dict[str, str | None] = {
    "CREDITGATE_DATABASE_URL": None,
    "CREDITGATE_SERVER": None,
    "CREDITGATE_PROFILE": None,
    "CREDITGATE_ADMIN_TOKEN": None,
    "CREDITGATE_ADMIN_TOKEN_FILE": None,
    "CREDITGATE_CONFIG": "/nonexistent/creditgate.toml",
}


@pytest.fixture
def server(database_url: str, db: Database) -> Iterator[str]:
    with live_server(database_url, TOKEN) as url:
        yield url


def invoke(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={**CLEAN, **(env or {})})


def remote(server: str, *args: str, ok: bool = True) -> Any:
    """What a command printed with --json through the server: `data`, or the refusal."""
    done = invoke(*args, "--json", "--server", server, env={"CREDITGATE_ADMIN_TOKEN": TOKEN})
    assert (done.exit_code == 0) == ok, done.output
    (line,) = done.stdout.splitlines()
    parsed = json.loads(line)
    return parsed["data"] if ok else parsed


def local(url: str, *args: str) -> Any:
    done = invoke(*args, "--json", "--database-url", url)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)["data"]


def both_texts(server: str, url: str, *args: str) -> str:
    """A command's text through the server, checked equal to its text on the database."""
    through = invoke(*args, "--server", server, env={"CREDITGATE_ADMIN_TOKEN": TOKEN})
    direct = invoke(*args, "--database-url", url)
    assert through.exit_code == direct.exit_code == 0, through.output + direct.output
    assert through.stdout == direct.stdout
    return through.stdout


def test_the_common_commands_through_a_server_answer_as_on_the_database(
    server: str, database_url: str
) -> None:
    team = remote(server, "team", "create", "acme", "--plan", "hobby")
    assert (team["name"], team["plan"]) == ("acme", "hobby")
    taken = remote(server, "team", "create", "acme", ok=False)
    assert taken == {
        "success": False,
        "error": "A team named acme exists already: team names are unique, choose another",
        "status": 409,
        "field": "name",
    }
    key = remote(server, "key", "create", "acme", "--name", "ci", "--cap", "50")
    assert key["key"].startswith("fc-") and key["teamId"] == team["id"]
    charged = remote(server, "charge", key["key"], "30", "--endpoint", "scrape", "--id", "e1")
    assert (charged["credits"], charged["remainingCredits"], charged["replayed"]) == (
        30,
        2970,
        False,
    )
    again = remote(server, "charge", key["id"], "30", "--endpoint", "scrape", "--id", "e1")
    assert (again["replayed"], again["id"]) == (True, charged["id"])
    refused = remote(server, "charge", key["key"], "21", ok=False)
    assert (refused["status"], refused["limitedBy"]) == (402, "key cap")
    granted = remote(server, "grant", "acme", "100", "--kind", "coupon", "--id", "g1")
    assert (granted["remainingCredits"], granted["replayed"]) == (3070, False)
    assert remote(server, "grant", "acme", "100", "--kind", "coupon", "--id", "g1")["replayed"]
    rule = remote(server, "topup", "add", "acme", "--below", "10", "--credits", "500")
    assert (rule["below"], rule["credits"]) == (10, 500)

    # every read is the same object, and the same text, both ways
    for args in (
        ["team", "list"],
        ["team", "show", "acme"],
        ["team", "show", team["id"]],
        ["key", "list", "acme"],
        ["usage", "acme"],
        ["usage", "acme", "--by-key"],
        ["plan", "list"],
        ["topup", "list", "acme"],
        ["alert", "list", "acme"],
    ):
        assert remote(server, *args) == local(database_url, *args), args
        both_texts(server, database_url, *args)
    shown = remote(server, "team", "show", "acme")
    assert (shown["balance"]["remainingCredits"], shown["creditsUsed"], shown["keys"]) == (
        3070,
        30,
        1,
    )
    assert [
        (r["apiKey"], r["creditsUsed"]) for r in remote(server, "usage", "acme", "--by-key")
    ] == [("ci", 30)]
    revoked = remote(server, "key", "revoke", key["id"])
    assert revoked["revokedAt"] is not None
    assert remote(server, "team", "show", "acme")["liveKeys"] == 0
    renamed = remote(server, "team", "update", "acme", "--name", "acme-eu")
    assert renamed["name"] == "acme-eu"
    missing = remote(server, "usage", "acme", ok=False)
    assert (missing["status"], missing["error"]) == (404, "Team acme not found")


def test_a_server_unreachable_or_refusing_the_token_is_one_line_and_exit_1(
    server: str, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    done = invoke("team", "list", "--server", nobody, env={"CREDITGATE_ADMIN_TOKEN": TOKEN})
    assert (done.exit_code, done.stdout) == (1, "")
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: cannot reach the creditgate server at {nobody}: ")
    for env in ({"CREDITGATE_ADMIN_TOKEN": "wrong-token-wrong-token"}, {}):
        done = invoke("team", "list", "--server", server, env=env)
        assert (done.exit_code, done.stdout) == (1, "")
        assert done.stderr == (
            f"error: the server at {server} refused the admin token (401): set "
            "CREDITGATE_ADMIN_TOKEN or give --token-file with the server's admin token\n"
        )
    as_json = invoke("team", "list", "--json", "--server", server)
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["status"] == 401
    both = invoke("team", "list", "--server", server, "--database-url", "sqlite:///x.db")
    assert both.exit_code == 2 and "not both" in both.stderr
    verify = invoke("verify", "--server", server, env={"CREDITGATE_ADMIN_TOKEN": TOKEN})
    assert verify.exit_code == 1
    assert "works on the database itself, not through a server" in verify.stderr


def test_a_profile_names_the_server_and_its_token_file(server: str, tmp_path: Path) -> None:
    token = tmp_path / "prod.token"
    token.write_text(TOKEN + "\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'default_profile = "prod"\n[profile.prod]\nserver = "{server}"\n'
        f'token_file = "{token}"\n[profile.broken]\nserver = "{server}"\n'
    )
    env: dict[str, str | None] = {"CREDITGATE_CONFIG": str(config)}
    made = invoke("team", "create", "acme", "--json", "--profile", "prod", env=env)
    assert made.exit_code == 0, made.output
    listed = invoke("team", "list", "--json", env=env)  # the default profile
    assert [t["name"] for t in json.loads(listed.stdout)["data"]] == ["acme"]
    by_file = invoke("team", "list", "--json", "--server", server, "--token-file", str(token))
    assert by_file.stdout == listed.stdout
    no_token = invoke("team", "list", "--profile", "broken", env=env)
    assert no_token.exit_code == 1 and "refused the admin token (401)" in no_token.stderr
    unknown = invoke("team", "list", "--profile", "nope", env=env)
    assert unknown.exit_code == 2
    assert f"no profile 'nope' in {config} (it has: broken, prod)" in unknown.stderr
