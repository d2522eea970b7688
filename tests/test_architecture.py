"""Dependencies point one way; the domain stays pure; only storage speaks SQL."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "src" / "creditgate"


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def test_the_domain_imports_no_web_database_or_other_layer() -> None:
    banned = (
        "sqlalchemy",
        "starlette",
        "alembic",
        "psycopg",
        "httpx",
        "uvicorn",
        "click",
        "creditgate.storage",
        "creditgate.services",
        "creditgate.http",
        "creditgate.cli",
    )
    for path in modules("domain"):
        bad = {i for i in imports(path) if i.startswith(banned)}
        assert not bad, f"{path.name} imports {bad}"


def test_only_storage_builds_sql() -> None:
    for layer in ("services", "http", "cli", "domain"):
        for path in modules(layer):
            sql = {i for i in imports(path) if i.startswith("sqlalchemy")}
            assert sql <= {"sqlalchemy.Connection"}, f"{path} imports {sql}"


def test_storage_and_services_know_nothing_of_http() -> None:
    for layer in ("storage", "services"):
        for path in modules(layer):
            bad = {
                i
                for i in imports(path)
                if i.startswith(("starlette", "creditgate.http", "creditgate.cli"))
            }
            assert not bad, f"{path} imports {bad}"
