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


CREDIT_TABLES = {
    "grants",
    "entries",
    "idempotency",
    "usage_by_period",
    "usage_by_key",
    "usage_by_hour",
    "reservations",
}
WRITE_PATH = PACKAGE / "storage" / "book.py"
# Not a credit movement: naming the upstream job a hold pays for (and who owns it since).
HAND_OVER = (PACKAGE / "storage" / "reservations.py", "hand_over")


def credit_writes(path: Path) -> list[str]:
    """Where `path` writes a credit table: SQLAlchemy insert/update/delete of one, or a
    hand-written INSERT INTO / UPDATE / DELETE FROM naming one."""
    found = []
    tree = ast.parse(path.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    scopes = [("<module>", [s for s in tree.body if not isinstance(s, ast.FunctionDef)])]
    scopes += [(f.name, f.body) for f in functions]
    for name, body in scopes:
        for node in (n for stmt in body for n in ast.walk(stmt)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("insert", "update", "delete")
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in CREDIT_TABLES
                and (path, name) != HAND_OVER
            ):
                found.append(f"{path.name}:{node.lineno} {node.func.id}({node.args[0].id})")
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                sql = " ".join(node.value.split()).upper()
                for table in CREDIT_TABLES:
                    t = table.upper()
                    if (
                        f"INSERT INTO {t} " in sql
                        or f"UPDATE {t} " in sql
                        or f"DELETE FROM {t}" in sql
                    ):
                        found.append(f"{path.name}:{node.lineno} SQL on {table}")
    return sorted(set(found))


def test_credits_are_written_by_the_one_write_path_only() -> None:
    """Every credit movement goes through services/ledger.py, whose writes storage/book.py
    makes: no other module inserts, updates or deletes a credit table's rows."""
    assert credit_writes(WRITE_PATH), "the check must see the write path's own statements"
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == WRITE_PATH or "migrations" in path.parts:
            continue
        assert not credit_writes(path), f"{path} writes credit rows: {credit_writes(path)}"
