"""A Python client generated from the live /openapi.json drives a team's whole life.

openapi-python-client (a dev dependency) generates the package into a temporary folder, as the
README's one command does; if it cannot generate, or the client cannot read an answer, the
document is wrong. Every answer is also checked against the document (tests/openapi_support).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from creditgate.storage.database import Database
from tests.conftest import ADMIN_TOKEN, IN_CI
from tests.openapi_support import checker
from tests.server import live_server

PACKAGE = "creditgate_admin_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture
def generated(tmp_path: Path, database_url: str, db: Database) -> Iterator[tuple[str, ModuleType]]:
    """The live server's URL, and the client package generated from its /openapi.json."""
    if not GENERATOR.exists():
        if IN_CI:
            pytest.fail(f"{GENERATOR} is missing: scripts/setup --dev installs it")
        pytest.skip("openapi-python-client is not installed (scripts/setup --dev)")
    with live_server(database_url, ADMIN_TOKEN) as url:
        document = tmp_path / "openapi.json"
        document.write_bytes(
            httpx.get(f"{url}/openapi.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            .raise_for_status()
            .content
        )
        config = tmp_path / "config.yaml"
        config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
        made = subprocess.run(
            [
                str(GENERATOR),
                "generate",
                "--path",
                str(document),
                "--config",
                str(config),
                "--meta",
                "none",
                "--output-path",
                str(tmp_path / PACKAGE),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = made.stdout + made.stderr
        assert made.returncode == 0, said
        assert "Warning" not in said and "Error" not in said, said  # nothing of it skipped
        sys.path.insert(0, str(tmp_path))
        try:
            yield url, importlib.import_module(PACKAGE)
        finally:
            sys.path.remove(str(tmp_path))
            for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
                del sys.modules[name]


def test_a_generated_client_drives_a_team_through_its_life(
    generated: tuple[str, ModuleType],
) -> None:
    url, package = generated

    def api(name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.api.admin.{name}")

    models = importlib.import_module(f"{PACKAGE}.models")
    # The suite's check of every answer against the document, on the client's own connection.
    http = httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        event_hooks={"response": [checker().hook]},
    )
    with http:
        client = package.AuthenticatedClient(base_url=url, token=ADMIN_TOKEN)
        drive(api, models, package, client.set_httpx_client(http))


def drive(api: Any, models: Any, package: Any, client: Any) -> None:
    def ok(answer: Any, status: int = 200) -> Any:
        assert answer.status_code == HTTPStatus(status), answer.content
        assert answer.parsed.success is True
        return answer.parsed

    plan = ok(
        api("create_plan").sync_detailed(
            client=client, body=models.PlanIn(id="client-plan", credits_=1_000, concurrency=3)
        ),
        201,
    ).data
    assert (plan.id, plan.credits_, plan.interval, plan.concurrency) == (
        "client-plan",
        1_000,
        "month",
        3,
    )
    team = ok(
        api("create_team").sync_detailed(
            client=client, body=models.TeamIn(name="acme", plan="client-plan")
        ),
        201,
    ).data
    assert (team.name, team.plan, team.suspended) == ("acme", "client-plan", False)
    key = ok(
        api("create_key").sync_detailed(team.id, client=client, body=models.KeyIn(name="ci")),
        201,
    ).data
    assert key.key.startswith("fc-") and key.hint == "fc-..." + key.key[-4:]
    for name in ("two", "three"):
        api("create_key").sync_detailed(team.id, client=client, body=models.KeyIn(name=name))

    granted = ok(
        api("grant_credits").sync_detailed(
            team.id,
            client=client,
            body=models.GrantIn(credits_=500, kind="topup", idempotency_key="g-1"),
        ),
        201,
    ).data
    assert (granted.credits_, granted.remaining_credits) == (500, 1_500)

    charged = ok(
        api("record_charge").sync_detailed(
            client=client, body=models.ChargeIn(key=key.key, credits_=120, endpoint="scrape")
        ),
        201,
    ).data
    assert (charged.key_id, charged.credits_, charged.remaining_credits) == (key.id, 120, 1_380)
    refused = api("record_charge").sync_detailed(
        client=client, body=models.ChargeIn(key_id=key.id, credits_=5_000)
    )
    assert refused.status_code == HTTPStatus.PAYMENT_REQUIRED
    assert refused.parsed.success is False
    assert refused.parsed.additional_properties["requiredCredits"] == 5_000

    hold = ok(
        api("reserve_credits").sync_detailed(
            client=client, body=models.ReserveIn(key_id=key.id, credits_=300)
        ),
        201,
    ).data
    assert (hold.status, hold.holding, hold.remaining_credits) == ("open", 300, 1_080)
    settled = ok(
        api("settle_reservation").sync_detailed(
            hold.id, client=client, body=models.SettleIn(credits_=200, final=True)
        )
    ).data
    assert (settled.status, settled.settled, settled.holding) == ("settled", 200, 0)
    assert settled.closed_at is not None

    balance = ok(api("get_balance").sync_detailed(team.id, client=client)).data
    assert (balance.remaining_credits, balance.plan_credits) == (1_180, 1_000)
    usage = ok(api("get_usage").sync_detailed(team.id, client=client, by_key=True)).data
    assert [(row.api_key, row.credits_used) for row in usage] == [("ci", 320)]

    names: list[str] = []
    cursor: Any = package.types.UNSET
    while True:
        page = ok(api("list_keys").sync_detailed(team.id, client=client, limit=2, cursor=cursor))
        names += [k.name for k in page.data]
        if not page.has_more:
            assert page.cursor is None
            break
        cursor = page.cursor
    assert names == ["ci", "two", "three"]

    revoked = ok(api("revoke_key").sync_detailed(key.id, client=client)).data
    assert revoked.revoked_at is not None
    again = api("record_charge").sync_detailed(
        client=client, body=models.ChargeIn(key_id=key.id, credits_=1)
    )
    assert again.status_code == HTTPStatus.CONFLICT
    missing = api("get_team").sync_detailed("nope", client=client)
    assert (missing.status_code, missing.parsed.error) == (404, "Team nope not found")
