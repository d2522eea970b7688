"""The official JS SDK (@mendable/firecrawl-js, pinned in tests/sdk/js) against a live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.sdk.conftest import Scenario

JS = Path(__file__).parent / "js"


def node_ready() -> bool:
    return shutil.which("node") is not None and (JS / "node_modules" / "@mendable").exists()


@pytest.fixture
def js_sdk() -> Path:
    if not node_ready():
        if IN_CI:
            pytest.fail("node and tests/sdk/js/node_modules are required (run scripts/test)")
        pytest.skip("node or the JS SDK is not installed (run: npm ci --prefix tests/sdk/js)")
    return JS


def test_js_sdk_reads_real_numbers(scenario: Scenario, js_sdk: Path) -> None:
    result = subprocess.run(
        ["node", str(js_sdk / "account.mjs")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CG_URL": scenario.url, "CG_KEY": scenario.key},
        check=True,
    )
    out = json.loads(result.stdout)
    used = sum(scenario.used_by.values())
    assert (out["credit"]["remainingCredits"], out["credit"]["planCredits"]) == (3000 - used, 3000)
    assert out["token"]["remainingTokens"] == (3000 - used) * 15
    assert [(p["apiKey"], p["creditsUsed"]) for p in out["historical"]["periods"]] == sorted(
        scenario.used_by.items()
    )
    assert [p["tokensUsed"] for p in out["tokenHistorical"]["periods"]] == [used * 15]
    assert (out["queue"]["jobsInQueue"], out["queue"]["maxConcurrency"]) == (0, 5)
    assert out["concurrency"] == {"concurrency": 0, "maxConcurrency": 5}
    assert out["invalid"]["status"] == 401
    assert "Unauthorized: Invalid token" in out["invalid"]["message"]
