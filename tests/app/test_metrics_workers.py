"""Under `creditgate serve --workers 2`, /metrics counts every worker's requests, whichever
worker answers the scrape (prometheus_client's multiprocess mode)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.metrics_support import requests, scrape
from tests.server import live_server


def test_two_workers_report_the_sum_of_their_requests(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"a stale file of an earlier run")
    url = f"sqlite:///{tmp_path}/creditgate.db"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with live_server(url, ADMIN_TOKEN, workers=2, extra_env=env) as base:
        for _ in range(20):  # a connection each, so both workers take some
            with httpx.Client() as client:
                assert client.get(f"{base}/health/live").status_code == 200
        for _ in range(4):  # whichever worker answers, the same total
            assert requests(scrape(base), "/health/live", 200, "admitted") == 20
        # Both workers write their own file (the stale one was removed at start).
        pids = {path.stem.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")}
        assert len(pids) == 2 and "1" not in pids
