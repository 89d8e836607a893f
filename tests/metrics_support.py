"""Reading Prometheus expositions in tests, and running real processes to scrape."""

from __future__ import annotations

import socket

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition: (sample name, its labels) → value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; a test that asks for one that is not there fails."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} is not exported"
    return samples[key]


def exported(text: str) -> dict[str, frozenset[str]]:
    """The metrics of an exposition as a person reads them (``notiflow_messages_total``, a
    histogram by its base name), each with the labels its samples carry (``le`` aside)."""
    found: dict[str, frozenset[str]] = {}
    for family in text_string_to_metric_families(text):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels: set[str] = set()
        for sample in family.samples:
            labels.update(key for key in sample.labels if key != "le")
        found[name] = frozenset(labels)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
