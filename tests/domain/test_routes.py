"""The route table: exactly firecrawl-api.md §7, matched in one spelling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from creditgate.domain.routes import DEFAULT_TABLE, ROUTES, RouteKind

SPEC = Path(__file__).parents[2] / "docs" / "firecrawl-api.md"  # the project's copy of the spec


def _spec_rows() -> set[tuple[str, str]]:
    """(method, path) of every row of the spec's §7 table, `:id` written `{id}`."""
    section = SPEC.read_text().split("## 7.")[1]
    found: set[tuple[str, str]] = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) != 4 or cells[0] in ("kind", "---"):
            continue
        for version, cell in (("v1", cells[1]), ("v2", cells[2])):
            method = ""
            for spelled in re.findall(r"`([^`]+)`", cell):
                parts = spelled.split(" ")
                if len(parts) == 2:
                    method, spelled = parts
                path = spelled.replace(":id", "{id}").rstrip("/").removesuffix("/...")
                found.add((method, f"/{version}{path}"))
    return found


def test_the_table_is_the_specs_table() -> None:
    # The spec writes the account routes as `/team/...`: every one of ours is under it.
    team = {("GET", "/v1/team"), ("GET", "/v2/team")}
    ours = {(r.method, r.path) for r in ROUTES}
    under_team = {(m, p) for m, p in ours if p.startswith(("/v1/team/", "/v2/team/"))}
    assert ours - under_team == _spec_rows() - team
    assert {r.kind for r in ROUTES if (r.method, r.path) in under_team} == {RouteKind.ACCOUNT}


def test_v2_agent_and_the_upstreams_internals_are_not_routes() -> None:
    for method, path in (
        ("POST", "/v2/agent"),
        ("GET", "/admin/k/queues"),
        ("GET", "/v1/../admin/k/queues"),
        ("POST", "/v2/CRAWL"),
        ("GET", "/test"),
    ):
        assert DEFAULT_TABLE.match(method, path) is None


def test_literal_rows_win_over_job_ids() -> None:
    active = DEFAULT_TABLE.match("GET", "/v2/crawl/active")
    assert active is not None and active.row.kind is RouteKind.LIST
    status = DEFAULT_TABLE.match("GET", "/v2/crawl/0f1e2d3c-aaaa-bbbb-cccc-111122223333")
    assert status is not None and status.row.kind is RouteKind.JOB_READ
    assert status.job_id == "0f1e2d3c-aaaa-bbbb-cccc-111122223333"
    assert status.row.upstream_path(status.job_id) == f"/v2/crawl/{status.job_id}"


@pytest.mark.parametrize("job_id", ["a.b", "x" * 101, "id%2e", "with space"])
def test_a_job_id_is_letters_digits_dash_and_underscore(job_id: str) -> None:
    assert DEFAULT_TABLE.match("GET", f"/v2/crawl/{job_id}") is None


def test_methods_are_part_of_the_row() -> None:
    assert DEFAULT_TABLE.match("GET", "/v2/scrape") is None
    cancel = DEFAULT_TABLE.match("DELETE", "/v1/batch/scrape/abc")
    assert cancel is not None and cancel.row.kind is RouteKind.JOB_CANCEL
    assert DEFAULT_TABLE.match("DELETE", "/v2/extract/abc") is None
