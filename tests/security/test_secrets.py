"""Secrets come from the environment or a file; one given on argv works but is warned about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from creditgate.app.serve import app_from_env
from creditgate.cli import main
from creditgate.settings import Settings

# Every variable `serve` may set, restored (unset) by CliRunner after each run.
ENV: dict[str, str | None] = {
    f"CREDITGATE_{name}": None
    for name in (
        "HOST",
        "PORT",
        "WORKERS",
        "DATABASE_URL",
        "ADMIN_TOKEN",
        "ADMIN_TOKEN_FILE",
        "UPSTREAM_URL",
        "UPSTREAM_KEY",
        "UPSTREAM_KEY_FILE",
        "REDIS_URL",
    )
}
WARNING = (
    "warning: --admin-token is visible to other local users in the process list; "
    "set CREDITGATE_ADMIN_TOKEN or use --admin-token-file instead\n"
)


def test_serve_reads_secrets_from_files_and_warns_about_secrets_on_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str | None, str | None]] = []

    def run(*_args: Any, **_kwargs: Any) -> None:  # what each worker process would build
        app = app_from_env()
        settings = Settings()
        seen.append((app.state.ctx.admin_token, settings.upstream_secret()))
        app.state.ctx.db.dispose()

    monkeypatch.setattr(uvicorn, "run", run)
    url = f"sqlite:///{tmp_path}/creditgate.db"
    token, key, empty = tmp_path / "token", tmp_path / "key", tmp_path / "empty"
    token.write_text("s3cret-admin-token\n")
    key.write_text("fc-upstream\r\n")
    empty.write_text("\n")

    def serve(*args: str, **env: str) -> Any:
        return CliRunner().invoke(main, ["serve", "--database-url", url, *args], env={**ENV, **env})

    done = serve("--admin-token-file", str(token), CREDITGATE_UPSTREAM_KEY_FILE=str(key))
    assert done.exit_code == 0, done.output
    assert "warning" not in done.stderr
    assert seen.pop() == ("s3cret-admin-token", "fc-upstream")

    done = serve(CREDITGATE_ADMIN_TOKEN="admin-token-from-env", CREDITGATE_UPSTREAM_KEY="k")
    assert (done.exit_code, seen.pop()) == (0, ("admin-token-from-env", "k"))
    assert "warning" not in done.stderr

    done = serve("--admin-token", "admin-token-on-argv", CREDITGATE_ADMIN_TOKEN_FILE=str(token))
    assert (done.exit_code, seen.pop()) == (0, ("admin-token-on-argv", None))
    assert done.stderr.startswith(WARNING)

    missing = tmp_path / "missing"
    for args, env, error in (
        (
            ["--admin-token-file", str(missing)],
            {},
            f"cannot read the admin token from {missing}: No such file or directory",
        ),
        ([], {"CREDITGATE_ADMIN_TOKEN_FILE": str(empty)}, f"the admin token file {empty} is empty"),
        (
            [],
            {"CREDITGATE_UPSTREAM_KEY_FILE": str(tmp_path)},
            f"cannot read the upstream key from {tmp_path}: Is a directory",
        ),
        (
            [],
            {"CREDITGATE_ADMIN_TOKEN": "t", "CREDITGATE_ADMIN_TOKEN_FILE": str(token)},
            "give the admin token by CREDITGATE_ADMIN_TOKEN or by CREDITGATE_ADMIN_TOKEN_FILE, "
            "not both",
        ),
    ):
        refused = serve(*args, **env)
        assert (refused.exit_code, refused.stderr) == (1, f"Error: {error}\n"), args
    assert seen == []
