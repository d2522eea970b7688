"""What the ledger and its database report to Prometheus (the HTTP side is web/metrics.py).

Every metric of creditgate lives in REGISTRY, or, when prometheus_client runs in its
multiprocess mode (PROMETHEUS_MULTIPROC_DIR set before it was imported: `creditgate serve
--workers N`), in the files of that directory, which a scrape of any worker sums
(`registry_for_scrape`). No label ever names a team, a key or anything a client sent: labels
are route patterns, statuses, outcomes and closed sets of kinds (docs/security.md).

Counted as it happens (per process, summed across workers):
  creditgate_credits_charged_total      credits charged, counted once their transaction
                                        committed (storage/tx.py: Tx.after_commit)
  creditgate_webhook_deliveries_total   webhook deliveries by outcome (delivered, failed) and
                                        failure reason: reported by the webhook dispatcher
                                        through `webhook_delivered` and `webhook_failed`

Read at scrape time (DatabaseCollector), never maintained on the hot path:
  creditgate_reservations_open          open, unexpired holds and the credits they keep aside,
  creditgate_reservations_held_credits  from the database (one indexed aggregate): the truth
                                        across every process, whichever worker is scraped
  creditgate_db_pool_*                  the answering process's SQLAlchemy pools
  creditgate_webhook_backlog            what the reader given to `register_webhook_backlog`
                                        returns (the webhook outbox's pending deliveries)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, values
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from creditgate.domain.instants import Instant, now
from creditgate.storage import queued_rows as queued_rows
from creditgate.storage import reservation_rows as reservation_rows
from creditgate.storage.database import Database
from creditgate.storage.tx import Tx

log = logging.getLogger("creditgate.metrics")

REGISTRY: Final = CollectorRegistry(auto_describe=True)


def multiprocess() -> bool:
    """Does this process write its metrics to PROMETHEUS_MULTIPROC_DIR? (prometheus_client
    decides it once, when first imported.)"""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


# --- the ledger ------------------------------------------------------------------------------

CREDITS_CHARGED: Final = Counter(
    "creditgate_credits_charged",
    "Credits charged (charges, settlements, reported job totals), once committed.",
    registry=REGISTRY,
)


def credits_charged(credits: int) -> None:
    """Count credits whose charge has committed (called after the commit, never before)."""
    CREDITS_CHARGED.inc(credits)


# --- webhooks: the registration point for the webhook dispatcher -------------------------------

WEBHOOK_FAILURE_REASONS: Final = frozenset(
    {"timeout", "connect", "redirect", "http_4xx", "http_5xx", "invalid_target", "other"}
)

WEBHOOK_DELIVERIES: Final = Counter(
    "creditgate_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, failed) and failure reason.",
    ["outcome", "reason"],
    registry=REGISTRY,
)
_DELIVERED: Final = WEBHOOK_DELIVERIES.labels("delivered", "")

BacklogReader = Callable[[Database], int]
_backlog: BacklogReader | None = None
_backlog_lock = threading.Lock()


def webhook_delivered() -> None:
    """One delivery the receiver accepted (2xx)."""
    _DELIVERED.inc()


def webhook_failed(reason: str) -> None:
    """One failed delivery attempt. `reason` is one of WEBHOOK_FAILURE_REASONS; anything else
    is counted as `other` (a label must never carry a URL, a body or an error's text)."""
    label = reason if reason in WEBHOOK_FAILURE_REASONS else "other"
    WEBHOOK_DELIVERIES.labels("failed", label).inc()


def register_webhook_backlog(reader: BacklogReader | None) -> None:
    """Give the function that counts pending webhook deliveries (e.g. a `SELECT count(*)` of
    the outbox); it is called with the app's database at each scrape, in a worker thread, and
    reported as creditgate_webhook_backlog. None unregisters it (tests)."""
    global _backlog
    with _backlog_lock:
        _backlog = reader


# --- read at scrape time -----------------------------------------------------------------------


class DatabaseCollector(Collector):
    """Gauges read from the database and its pools when Prometheus scrapes. A read that fails
    (the database down) leaves its gauge out of that scrape and is logged; the scrape goes on."""

    def __init__(self, db: Database, clock: Callable[[], Instant] = now) -> None:
        self.db, self.clock = db, clock

    def collect(self) -> Iterator[Metric]:
        yield from self._pools()
        yield from self._reservations()
        yield from self._queued_starts()
        yield from self._webhook_backlog()

    def _queued_starts(self) -> Iterator[Metric]:
        try:
            with self.db.read() as conn:
                waiting, oldest = queued_rows.waiting_totals(Tx.of(conn))
        except Exception as exc:
            log.warning("metrics: queued starts could not be read (%s)", type(exc).__name__)
            return
        yield GaugeMetricFamily(
            "creditgate_queued_starts_waiting",
            "Job starts accepted and waiting for a slot, of every team, from the database.",
            value=waiting,
        )
        age = 0.0 if oldest is None else max(self.clock() - oldest, 0) / 1000
        yield GaugeMetricFamily(
            "creditgate_queued_starts_oldest_seconds",
            "How long the oldest waiting job start has waited (0: none waits).",
            value=age,
        )

    def _pools(self) -> Iterator[Metric]:
        out = GaugeMetricFamily(
            "creditgate_db_pool_checked_out",
            "Connections of this process's pool in use now.",
            labels=["pool"],
        )
        size = GaugeMetricFamily(
            "creditgate_db_pool_size",
            "Connections this process's pool may open (its share of CREDITGATE_DB_CONNECTIONS).",
            labels=["pool"],
        )
        for name, pool in self.db.pools().items():
            out.add_metric([name], pool.checkedout())
            size.add_metric([name], pool.size())
        yield out
        yield size

    def _reservations(self) -> Iterator[Metric]:
        try:
            with self.db.read() as conn:
                count, held, slots = reservation_rows.open_totals(conn, self.clock())
        except Exception as exc:
            log.warning("metrics: open reservations could not be read (%s)", type(exc).__name__)
            return
        yield GaugeMetricFamily(
            "creditgate_reservations_open",
            "Open, unexpired reservations (holds) of every team, from the database.",
            value=count,
        )
        yield GaugeMetricFamily(
            "creditgate_reservations_held_credits",
            "Credits the open, unexpired reservations keep aside, from the database.",
            value=held,
        )
        yield GaugeMetricFamily(
            "creditgate_page_slots_in_use",
            "Pages every team may have in flight upstream now: the open holds' slots.",
            value=slots,
        )

    def _webhook_backlog(self) -> Iterator[Metric]:
        with _backlog_lock:
            reader = _backlog
        if reader is None:
            return
        try:
            pending = reader(self.db)
        except Exception as exc:
            log.warning("metrics: the webhook backlog could not be read (%s)", type(exc).__name__)
            return
        yield GaugeMetricFamily(
            "creditgate_webhook_backlog",
            "Webhook deliveries waiting to be sent.",
            value=pending,
        )


def registry_for_scrape(db: Database, clock: Callable[[], Instant] = now) -> CollectorRegistry:
    """What one scrape reports: every process's counters (multiprocess mode) or this one's,
    and the gauges read now."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_Registered())
    registry.register(DatabaseCollector(db, clock))
    return registry


class _Registered(Collector):
    """REGISTRY's metrics, inside a scrape's registry."""

    def collect(self) -> Iterator[Metric]:
        return iter(REGISTRY.collect())
