"""The metrics of one process: a :class:`Metrics` object with a registry of its own.

There is no import-time global metric: ``create_app`` and ``notiflow worker`` each make one
``Metrics`` and hand it to what counts (the engine's parts, the HTTP middleware, ``/metrics``).
Several engines or apps in one process (the tests run many) thus never count into each other's
numbers, and no multiprocess mode is needed: one process per container, Prometheus sums.

Message outcomes are counted where they are written, after the transaction that wrote them has
committed: the repository that changes message states calls :func:`count_outcome` with the
session, which finds the process's ``Metrics`` on its session factory (:func:`bind`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

from prometheus_client import CollectorRegistry, Counter, Info, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notiflow import __version__
from notiflow.db.session import on_commit

if TYPE_CHECKING:
    from notiflow.metrics.database import DatabaseGauges
    from notiflow.metrics.engine import EngineMetrics
    from notiflow.metrics.http import HttpMetrics

Outcome = Literal["sent", "failed", "retried", "expired", "cancelled"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("sent", "failed", "retried", "expired", "cancelled")

_METRICS_KEY = "notiflow.metrics"

# Counters and histograms export no ``*_created`` series: they double the output for a number
# that Prometheus does not need (it detects counter resets by itself).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric of one process. The engine's and the API's families are registered when the
    process runs an engine (:meth:`engine`) or serves the API (:meth:`http`, :meth:`database`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        Info(
            "notiflow_build",
            "The running version of Notiflow (the value is always 1).",
            registry=self.registry,
        ).info({"version": __version__})
        ProcessCollector(registry=self.registry)  # process_*: CPU, memory, file descriptors
        messages = Counter(
            "notiflow_messages",
            "Messages that reached an outcome, counted by the process that stored it.",
            ["outcome"],
            registry=self.registry,
        )
        self._outcomes = {outcome: messages.labels(outcome) for outcome in OUTCOMES}
        self._engine: EngineMetrics | None = None
        self._http: HttpMetrics | None = None
        self._database: DatabaseGauges | None = None

    def count(self, outcome: Outcome, amount: int) -> None:
        if amount:
            self._outcomes[outcome].inc(amount)

    def engine(self, *, provider_timeout: float) -> EngineMetrics:
        """The delivery engine's metrics, registered on first use (once per process; the buckets
        of the first caller's provider timeout)."""
        if self._engine is None:
            from notiflow.metrics.engine import EngineMetrics

            self._engine = EngineMetrics(self.registry, provider_timeout=provider_timeout)
        return self._engine

    def http(self) -> HttpMetrics:
        """The API's request metrics, registered on first use."""
        if self._http is None:
            from notiflow.metrics.http import HttpMetrics

            self._http = HttpMetrics(self.registry)
        return self._http

    def database(self, sessionmaker: async_sessionmaker[AsyncSession]) -> DatabaseGauges:
        """The gauges read from the database at scrape time (by the API process only, so that
        Prometheus does not add up one copy per worker)."""
        if self._database is None:
            from notiflow.metrics.database import DatabaseGauges

            self._database = DatabaseGauges(self.registry, sessionmaker)
        return self._database

    async def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (text format, or OpenMetrics when asked for), and its content type."""
        if self._database is not None:
            await self._database.refresh()
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


def bind(sessionmaker: async_sessionmaker[AsyncSession], metrics: Metrics) -> None:
    """Make ``metrics`` the one that sessions of ``sessionmaker`` count outcomes into (sessions
    made before this call do not see it)."""
    info = dict(sessionmaker.kw.get("info") or {})
    info[_METRICS_KEY] = metrics
    sessionmaker.configure(info=info)


def count_outcome(session: AsyncSession, outcome: Outcome, amount: int) -> None:
    """Count ``amount`` messages that reached ``outcome`` in this transaction, once it commits.
    Nothing happens for a session whose factory has no bound metrics."""
    if not amount:
        return
    metrics: Metrics | None = session.info.get(_METRICS_KEY)
    if metrics is not None:
        on_commit(session, _counter(metrics, outcome, amount))


def _counter(metrics: Metrics, outcome: Outcome, amount: int) -> Callable[[], None]:
    return lambda: metrics.count(outcome, amount)


def authorized(expected: str, authorization: str | None) -> bool:
    """Whether the ``Authorization`` header carries ``Bearer <expected>`` (``expected`` empty:
    any request may read the metrics)."""
    if not expected:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        token.strip().encode(), expected.encode()
    )
