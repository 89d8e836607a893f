"""The delivery engine's metrics: provider requests, claims, write-backs, and the state of the
engines of this process (read when scraped, so they cost the hot path nothing).

The sender counts one request and observes its duration per provider request; the label child
of each answer is found in a small dict (answers come in few kinds), never by ``labels()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notiflow.delivery.policy import Outcome

if TYPE_CHECKING:
    from notiflow.delivery.engine import Engine

CODE_CLASSES = ("2xx", "4xx", "5xx", "timeout", "error")
# How a circuit breaker state is exported by notiflow_breaker_state.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DATABASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def provider_buckets(timeout: float) -> tuple[float, ...]:
    """Histogram buckets up to the provider timeout, which is the last finite bucket: no request
    lasts longer (each one is cut at it)."""
    return (*(b for b in _LATENCY_BUCKETS if b < timeout), timeout)


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry, *, provider_timeout: float) -> None:
        requests = Counter(
            "notiflow_provider_requests",
            "Requests to the provider, by the class of their answer.",
            ["code_class"],
            registry=registry,
        )
        self._classes = {name: requests.labels(name) for name in CODE_CLASSES}
        self._by_error: dict[str | None, Counter] = {None: self._classes["2xx"]}
        self._duration = Histogram(
            "notiflow_provider_request_duration_seconds",
            "How long requests to the provider took, answered or not.",
            buckets=provider_buckets(provider_timeout),
            registry=registry,
        )
        self.claim_seconds = Histogram(
            "notiflow_claim_seconds",
            "How long one claim of due messages (one statement per mailing) took.",
            buckets=_DATABASE_BUCKETS,
            registry=registry,
        )
        self.writeback_seconds = Histogram(
            "notiflow_writeback_seconds",
            "How long one write-back of a batch of outcomes took, until committed.",
            buckets=_DATABASE_BUCKETS,
            registry=registry,
        )
        self._engines = _Engines()
        registry.register(self._engines)

    @classmethod
    def detached(cls, *, provider_timeout: float) -> EngineMetrics:
        """Metrics in a registry nobody reads: for an engine part made without any."""
        return cls(CollectorRegistry(auto_describe=True), provider_timeout=provider_timeout)

    def watch(self, engine: Engine) -> None:
        """Export this engine's state (in flight, breaker, health) at every scrape."""
        self._engines.engines.append(engine)

    def answered(self, outcome: Outcome, seconds: float) -> None:
        """A request to the provider ended (with an answer or without one)."""
        self._duration.observe(seconds)
        child = self._by_error.get(outcome.error)
        if child is None:
            child = self._classify(outcome)
        child.inc()

    def _classify(self, outcome: Outcome) -> Counter:
        error = outcome.error or ""
        if error.startswith("HTTP ") and error[5:].isdigit():
            status = int(error[5:])
            name = f"{status // 100}xx"
            child = self._classes.get(name, self._classes["error"])  # 1xx, 3xx: not the API's
        elif error == "timeout":
            child = self._classes["timeout"]
        elif error == "invalid response" and (outcome.detail or "").startswith("HTTP 200"):
            return self._classes["2xx"]  # an answer, just not the JSON promised
        else:
            child = self._classes["error"]
            if error == "invalid response":
                return child  # a broken answer: not cached (the same kind as a 200 above)
        if len(self._by_error) < 256:
            self._by_error[outcome.error] = child
        return child


class _Engines(Collector):
    """The state of the engines of this process, read at scrape time. A process runs one engine
    (tests run several: the gauges add up, or show the worst)."""

    def __init__(self) -> None:
        self.engines: list[Engine] = []

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(self.engines)

    def _families(self, engines: Iterable[Engine] = ()) -> list[Metric]:
        in_flight = GaugeMetricFamily(
            "notiflow_send_in_flight", "Requests to the provider in flight now."
        )
        breaker = GaugeMetricFamily(
            "notiflow_breaker_state",
            "The provider's circuit breaker: 0 closed, 1 half-open (one probe may go), 2 open.",
        )
        auth = GaugeMetricFamily(
            "notiflow_provider_auth_paused",
            "1 while sending is paused because the provider refused the token (401/403).",
        )
        up = GaugeMetricFamily(
            "notiflow_engine_up",
            "1 while the delivery engine runs and every loop of it completes its rounds; 0 when "
            "it stopped or a loop stalled (then /health answers 503).",
        )
        webhooks = CounterMetricFamily(
            "notiflow_webhook_deliveries",
            "Webhook deliveries that ended: delivered (a 2xx), or failed after their last attempt.",
            labels=["outcome"],
        )
        running = [engine for engine in engines if engine.running]
        delivered = failed = 0
        for engine in engines:
            delivered += engine.webhooks.delivered
            failed += engine.webhooks.failed
        in_flight.add_metric([], sum(engine.sender.in_flight for engine in running))
        breaker.add_metric([], max((BREAKER_STATES[e.breaker_state()] for e in running), default=0))
        auth.add_metric([], int(any(e.sender.gate.state == "unauthorized" for e in running)))
        up.add_metric([], int(bool(running) and not any(e.problems() for e in running)))
        webhooks.add_metric(["delivered"], delivered)
        webhooks.add_metric(["failed"], failed)
        return [in_flight, breaker, auth, up, webhooks]
