"""The security suite runs against the gateway tests' fake upstream and gateway fixtures."""

from __future__ import annotations

from tests.gateway.conftest import fake, gateway

__all__ = ["fake", "gateway"]
