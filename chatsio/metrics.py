"""Prometheus metrics, one registry per app (tests build several apps per process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
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

        # Label children by label values: ``labels()`` costs more than the
        # count itself, and these are counted on every event and message.
        self._handled: dict[tuple, tuple] = {}
        self._delivered: dict[tuple, Counter] = {}
        self._stored: dict[str, Counter] = {}

    def handled(self, namespace: str, event: str, outcome: str, seconds: float) -> None:
        """Count one client event answered ``outcome`` (ok or an error code).

        ``event`` must be a handler name (or "unknown"): the values are few.
        """
        key = (namespace, event, outcome)
        children = self._handled.get(key)
        if children is None:
            children = self._handled[key] = (
                self.latency.labels(namespace, event),
                self.events.labels(namespace, event, outcome),
                None if outcome == "ok" else self.errors.labels(outcome, "socket"),
            )
        latency, events, errors = children
        latency.observe(seconds)
        events.inc()
        if errors is not None:
            errors.inc()

    def delivered(self, namespace: str | None, event: str, count: int) -> None:
        """Count ``count`` sockets on this node sent ``event``."""
        child = self._delivered.get((namespace, event))
        if child is None:
            child = self.deliveries.labels(namespace, event)
            self._delivered[(namespace, event)] = child
        child.inc(count)

    def stored(self, kind: str) -> None:
        """Count one message of ``kind`` committed by this node."""
        child = self._stored.get(kind)
        if child is None:
            child = self._stored[kind] = self.messages.labels(kind)
        child.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
