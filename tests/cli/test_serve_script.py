"""scripts/serve sets up only when what setup installs from changed: pyproject.toml or
scripts/setup itself (their hash is kept in .venv); a second start goes straight to the server.
Run on a copy of the script, with a stand-in setup and server that record their calls."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKE_SETUP = """#!/usr/bin/env bash
set -e
echo setup >> calls
[ ! -e setup-fails ] || exit 3
mkdir -p .venv/bin
printf '#!/usr/bin/env bash\\necho "creditgate $*" >> calls\\n' > .venv/bin/creditgate
chmod +x .venv/bin/creditgate
"""


def serve(root: Path, *args: str) -> int:
    done = subprocess.run(
        [root / "scripts" / "serve", *args], capture_output=True, text=True, check=False
    )
    return done.returncode


def calls(root: Path) -> list[str]:
    found = (root / "calls").read_text().splitlines()
    (root / "calls").unlink()
    return found


def test_setup_runs_again_only_when_pyproject_or_setup_changed(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "serve", tmp_path / "scripts" / "serve")
    (tmp_path / "scripts" / "setup").write_text(FAKE_SETUP)
    (tmp_path / "scripts" / "setup").chmod(0o755)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')

    assert serve(tmp_path, "--port", "8080") == 0
    assert calls(tmp_path) == ["setup", "creditgate serve --port 8080"]
    assert serve(tmp_path) == 0
    assert calls(tmp_path) == ["creditgate serve"]  # nothing changed: no setup

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2"\n')
    assert serve(tmp_path) == 0
    assert calls(tmp_path) == ["setup", "creditgate serve"]
    with (tmp_path / "scripts" / "setup").open("a") as setup:
        setup.write("# changed\n")
    assert serve(tmp_path) == 0
    assert calls(tmp_path) == ["setup", "creditgate serve"]

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "3"\n')
    (tmp_path / "setup-fails").touch()
    assert serve(tmp_path) == 3  # a failed setup serves nothing and records nothing
    assert calls(tmp_path) == ["setup"]
    (tmp_path / "setup-fails").unlink()
    assert serve(tmp_path) == 0
    assert calls(tmp_path) == ["setup", "creditgate serve"]

    shutil.rmtree(tmp_path / ".venv")  # a venv made anew is set up whatever the hash says
    assert serve(tmp_path) == 0
    assert calls(tmp_path) == ["setup", "creditgate serve"]


def test_an_admin_token_is_made_once_unless_one_is_given(tmp_path: Path) -> None:
    """The quick start's server has an admin token (the admin API and the operator's dashboard
    need one): made once, readable by its user only, and given to the server as a file."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "serve", tmp_path / "scripts" / "serve")
    (tmp_path / "scripts" / "setup").write_text(
        FAKE_SETUP.replace('echo "creditgate $*"', 'echo "token-file=$CREDITGATE_ADMIN_TOKEN_FILE"')
    )
    (tmp_path / "scripts" / "setup").chmod(0o755)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    token = tmp_path / ".creditgate" / "admin-token"

    assert serve(tmp_path) == 0
    assert calls(tmp_path) == ["setup", f"token-file={token}"]
    first = token.read_text().strip()
    assert len(first) == 64 and int(first, 16) >= 0
    assert token.stat().st_mode & 0o777 == 0o600
    assert serve(tmp_path) == 0  # the same token next time
    assert calls(tmp_path) == [f"token-file={token}"] and token.read_text().strip() == first

    given = subprocess.run(
        [tmp_path / "scripts" / "serve"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "CREDITGATE_ADMIN_TOKEN": "x" * 16},
    )
    assert "admin token" not in given.stderr
    assert calls(tmp_path) == ["token-file="]  # the operator's own token: no file is made
