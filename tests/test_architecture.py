"""Dependencies point one way; the domain stays pure; only storage speaks SQL.

The top-level units of `creditgate` and what each may import:

    domain <- storage <- services <- web <- http, gateway, dashboard <- app <- cli

`web` is the plumbing the HTTP faces share (context, auth, errors, bodies, logs, limits, the
upstream client); `http` (account and admin routes) and `gateway` (the proxy) use it and not
each other; `app` is the composition root that assembles them; the CLI starts the server
only through it.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "src" / "creditgate"
COMPOSITION_ROOT = "app"


def imports(path: Path) -> set[str]:
    """Every name a module imports, anywhere in it (a function's body, TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: a relative import; spell it from creditgate"
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def units() -> set[str]:
    """creditgate's top-level packages and modules (its own `__init__` aside)."""
    found = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    found |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return found


def unit_of(name: str, known: set[str]) -> str | None:
    """The top-level unit an imported name belongs to (`creditgate.web.auth.admit` -> web)."""
    parts = name.split(".")
    if parts[0] != "creditgate" or len(parts) < 2 or parts[1] not in known:
        return None  # not ours, or creditgate's own __init__ (its version)
    return parts[1]


def import_graph() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the modules of `unit` that import it (the evidence)."""
    known = units()
    graph: dict[str, dict[str, set[str]]] = {unit: {} for unit in known}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        source = relative.parts[0].removesuffix(".py")
        if source not in known:
            continue
        for name in imports(path):
            target = unit_of(name, known)
            if target is not None and target != source:
                graph[source].setdefault(target, set()).add(str(relative))
    return graph


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of the graph as a path that returns to its start, or None if it has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def importers(layer: str, banned: tuple[str, ...]) -> dict[str, set[str]]:
    """The modules of `layer` that import a name starting with one of `banned`, and what."""
    assert (PACKAGE / layer).is_dir(), f"no package creditgate.{layer}: update this test"
    found: dict[str, set[str]] = {}
    for path in modules(layer):
        bad = {i for i in imports(path) if i.startswith(banned)}
        if bad:
            found[str(path.relative_to(PACKAGE))] = bad
    return found


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
        "creditgate.web",
        "creditgate.http",
        "creditgate.gateway",
        "creditgate.dashboard",
        f"creditgate.{COMPOSITION_ROOT}",
        "creditgate.cli",
    )
    assert importers("domain", banned) == {}


def test_only_storage_builds_sql() -> None:
    layers = ("services", "web", "http", "gateway", "dashboard", COMPOSITION_ROOT, "cli", "domain")
    for layer in layers:
        for path in modules(layer):
            sql = {i for i in imports(path) if i.startswith("sqlalchemy")}
            assert sql <= {"sqlalchemy.Connection"}, f"{path} imports {sql}"


HTTP_FACES = (
    "starlette",
    "creditgate.web",
    "creditgate.http",
    "creditgate.gateway",
    "creditgate.dashboard",
)


def test_storage_and_services_know_nothing_of_http() -> None:
    banned = (*HTTP_FACES, f"creditgate.{COMPOSITION_ROOT}", "creditgate.cli")
    for layer in ("storage", "services"):
        assert importers(layer, banned) == {}, layer


def test_the_top_level_packages_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle is not None:
        evidence = [
            f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})" for a, b in itertools.pairwise(cycle)
        ]
        raise AssertionError("import cycle: " + " -> ".join(cycle) + "\n" + "\n".join(evidence))
    expected = {
        "domain",
        "storage",
        "services",
        "web",
        "http",
        "gateway",
        "dashboard",
        COMPOSITION_ROOT,
        "cli",
    }
    assert expected <= set(graph), f"moved? update this test: {expected - set(graph)}"


def test_the_cli_reaches_http_only_through_the_composition_root() -> None:
    """The CLI starts the server through `creditgate.app`; it shares no HTTP module."""
    assert importers("cli", HTTP_FACES) == {}


def test_the_dashboard_imports_neither_other_face_and_no_sql() -> None:
    banned = (
        "creditgate.http",
        "creditgate.gateway",
        "creditgate.storage",
        f"creditgate.{COMPOSITION_ROOT}",
        "creditgate.cli",
        "sqlalchemy",
    )
    assert importers("dashboard", banned) == {}


def test_the_chart_geometry_is_plain_python() -> None:
    """dashboard/charts.py turns numbers into shapes with no web import, so it is unit-tested
    alone (tests/dashboard/test_charts.py)."""
    found = imports(PACKAGE / "dashboard" / "charts.py")
    assert {i for i in found if not i.startswith(("math", "dataclasses", "__future__"))} == set()


def test_the_gateway_imports_nothing_of_the_account_and_admin_routes() -> None:
    banned = ("creditgate.http", f"creditgate.{COMPOSITION_ROOT}", "creditgate.cli")
    assert importers("gateway", banned) == {}


def test_web_imports_neither_of_the_http_faces_it_serves() -> None:
    banned = (
        "creditgate.http",
        "creditgate.gateway",
        "creditgate.dashboard",
        f"creditgate.{COMPOSITION_ROOT}",
        "creditgate.cli",
    )
    assert importers("web", banned) == {}


def test_the_limiter_route_table_and_upstream_client_need_no_starlette() -> None:
    """What the gateway decides and whom it calls is plain Python; only handlers, middleware
    and the app itself speak Starlette."""
    for path in (
        PACKAGE / "web" / "limits.py",
        PACKAGE / "web" / "upstream.py",
        PACKAGE / "domain" / "routes.py",
    ):
        starlette = {i for i in imports(path) if i.startswith("starlette")}
        assert not starlette, f"{path} imports {starlette}"


def test_find_cycle_reports_a_cycle_and_accepts_a_dag() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": ["y"], "y": ["y"]}) == ["y", "y"]


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
HAND_OVER = (PACKAGE / "storage" / "reservation_rows.py", "hand_over")


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


def test_no_module_name_means_two_things_in_services_and_storage() -> None:
    """A service is named by what it does, a storage module by the rows it holds: a name in
    both (`teams` the service and `teams` the rows, as twelve once were) makes a reader guess."""
    names = {
        layer: {p.stem for p in (PACKAGE / layer).glob("*.py")} for layer in ("services", "storage")
    }
    assert names["services"] & names["storage"] == {"__init__"}
