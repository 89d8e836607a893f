"""Gauges read from the database when ``/metrics`` is scraped: messages waiting to be sent, and
mailings by status. Both come from small tables — the per-mailing counters (``mailing_stats``)
and the mailings themselves — never from counting the messages, so a scrape costs what
``GET /api/v1/stats`` does, however many messages there are.

Only the API process exports them (workers would each export the same numbers, and Prometheus
would add them up). A scrape that cannot read them within a few seconds exports none of them
(rather than old numbers) and logs why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow.db.session import transaction
from notiflow.delivery.health import describe
from notiflow.models import MailingStatus
from notiflow.stats import repository

log = logging.getLogger("notiflow.metrics")

READ_TIMEOUT = 5.0


class DatabaseGauges(Collector):
    def __init__(
        self, registry: CollectorRegistry, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        self._sessionmaker = sessionmaker
        self._pending: int | None = None
        self._mailings: dict[str, int] | None = None
        registry.register(self)

    async def refresh(self) -> None:
        """Read the numbers now, for the scrape that follows."""
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                async with transaction(self._sessionmaker) as session:
                    totals = await repository.totals(session)
                    mailings = await repository.mailings_by_status(session)
        except Exception as exc:  # a scrape reports what it can rather than fail
            log.warning("metrics: cannot read the database gauges", extra={"error": describe(exc)})
            self._pending = self._mailings = None
            return
        self._pending = totals["pending"] + totals["sending"]
        self._mailings = mailings

    def describe(self) -> Iterable[Metric]:
        return self._families(0, dict.fromkeys((s.value for s in MailingStatus), 0))

    def collect(self) -> Iterable[Metric]:
        if self._pending is None or self._mailings is None:
            return []
        return self._families(self._pending, self._mailings)

    @staticmethod
    def _families(pending: int, mailings: dict[str, int]) -> list[Metric]:
        waiting = GaugeMetricFamily(
            "notiflow_messages_pending",
            "Messages not sent yet that may still be: pending, or being sent by a worker.",
            value=pending,
        )
        by_status = GaugeMetricFamily("notiflow_mailings", "Mailings by status.", labels=["status"])
        for status, count in sorted(mailings.items()):
            by_status.add_metric([status], count)
        return [waiting, by_status]
