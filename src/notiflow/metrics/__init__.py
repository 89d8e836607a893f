"""Prometheus metrics: one :class:`Metrics` per process (``core``), the engine's (``engine``), the
API's requests (``http``), gauges read from the database (``database``), and ``GET /metrics``
(``endpoints``). Every metric is listed in docs/metrics.md."""

from notiflow.metrics.core import Metrics, bind, count_outcome

__all__ = ["Metrics", "bind", "count_outcome"]
