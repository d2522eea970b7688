"""The official Python SDK (firecrawl, pinned) against a live creditgate process."""

from __future__ import annotations

import pytest
from firecrawl import Firecrawl
from firecrawl.v2.utils.error_handler import UnauthorizedError

from tests.sdk.conftest import Scenario


def test_python_sdk_reads_real_numbers(scenario: Scenario) -> None:
    fc = Firecrawl(api_key=scenario.key, api_url=scenario.url)
    used = sum(scenario.used_by.values())

    credit = fc.get_credit_usage()
    assert (credit.remaining_credits, credit.plan_credits) == (3000 - used, 3000)
    assert credit.billing_period_start is not None and credit.billing_period_end is not None
    assert credit.billing_period_start.endswith("Z")

    tokens = fc.get_token_usage()
    assert (tokens.remaining_tokens, tokens.plan_tokens) == ((3000 - used) * 15, 45_000)

    by_key = fc.v2.get_credit_usage_historical(by_api_key=True)
    assert by_key.success is True
    assert [(p.apiKey, p.creditsUsed) for p in by_key.periods] == sorted(scenario.used_by.items())

    token_history = fc.v2.get_token_usage_historical()
    assert [(p.apiKey, p.tokensUsed) for p in token_history.periods] == [(None, used * 15)]

    queue = fc.get_queue_status()
    assert (queue.jobs_in_queue, queue.active_jobs_in_queue, queue.max_concurrency) == (0, 0, 5)
    assert queue.most_recent_success is not None

    concurrency = fc.get_concurrency()
    assert (concurrency.concurrency, concurrency.max_concurrency) == (0, 5)


def test_python_sdk_raises_unauthorized_for_an_invalid_key(scenario: Scenario) -> None:
    fc = Firecrawl(api_key="fc-" + "0" * 32, api_url=scenario.url)
    with pytest.raises(UnauthorizedError) as caught:
        fc.get_credit_usage()
    assert "Unauthorized: Invalid token" in str(caught.value)
