"""Prometheus metrics, one registry per app (tests build several apps per process)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.sockets = Gauge(
            "chatsio_connected_sockets",
            "Sockets connected to this node, per namespace.",
            ["namespace"],
            registry=registry,
        )
        self.events = Counter(
            "chatsio_events",
            "Client events handled, by name and outcome (ok or an error code).",
            ["namespace", "event", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "chatsio_handler_seconds",
            "Time to handle a client event, until its ack is ready.",
            ["namespace", "event"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "chatsio_errors",
            "Errors answered to clients, by code and edge (socket or rest).",
            ["code", "edge"],
            registry=registry,
        )
        self.messages = Counter(
            "chatsio_messages_stored",
            "Messages committed to the database by this node, by kind.",
            ["kind"],
            registry=registry,
        )
        self.deliveries = Counter(
            "chatsio_deliveries",
            "Sockets on this node that an event was sent to (fan-out).",
            ["namespace", "event"],
            registry=registry,
        )

        # Label children by metric and label values: ``labels()`` costs more
        # than the count itself, and these are counted on every event and
        # message. The label values are few (handler names, codes, kinds).
        self._children: dict[tuple, Any] = {}

    def child(self, metric: Any, *labels: str | None) -> Any:
        """``metric.labels(*labels)``, looked up once."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def handled(self, namespace: str, event: str, outcome: str, seconds: float) -> None:
        """Count one client event answered ``outcome`` (ok or an error code).

        ``event`` must be a handler name (or "unknown"): the values are few.
        """
        self.child(self.latency, namespace, event).observe(seconds)
        self.child(self.events, namespace, event, outcome).inc()
        if outcome != "ok":
            self.child(self.errors, outcome, "socket").inc()

    def delivered(self, namespace: str | None, event: str, count: int) -> None:
        """Count ``count`` sockets on this node sent ``event``."""
        self.child(self.deliveries, namespace, event).inc(count)

    def stored(self, kind: str) -> None:
        """Count one message of ``kind`` committed by this node."""
        self.child(self.messages, kind).inc()

    def count_bus(self, received: Mapping[str, int]) -> None:
        """Expose the Redis bus's counts of messages received, by kind."""
        self.registry.register(BusReceived(received))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class BusReceived:
    """``chatsio_bus_received_total``, read from the counts the bus keeps in a
    dict: a Counter's ``inc`` takes a lock, on every message of the node."""

    def __init__(self, received: Mapping[str, int]) -> None:
        self.received = received

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "chatsio_bus_received",
            "Messages this node's Redis listener received, its own included, "
            "by channel (room or broadcast).",
            labels=["kind"],
        )
        for kind, count in self.received.items():
            family.add_metric([kind], count)
        yield family
