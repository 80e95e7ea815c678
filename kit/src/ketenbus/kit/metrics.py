"""The kit's Prometheus metrics. Each service has its own registry, served at /metrics.

FastStream's Kafka middleware adds its own (messages received/published, processing time);
these cover what only the kit knows: the outbox, the dead-letter topics, handler outcomes.
The outbox relay publishes past that middleware, so its publishing is counted here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class KitMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.registry = registry
        # Resident memory, CPU and open files of the process (process_*), for the 150 MB budget.
        ProcessCollector(registry=registry)
        labels = {"service": service}
        self.handler_seconds = Histogram(
            "ketenbus_handler_seconds",
            "Time to handle one event, transaction included.",
            ["event_type"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.events_handled = Counter(
            "ketenbus_events_handled",
            "Events a consumer finished, by outcome "
            "(processed, duplicate, ignored, skipped, dead_lettered).",
            ["event_type", "outcome"],
            registry=registry,
        )
        self.events_skipped = Counter(
            "ketenbus_events_skipped",
            "Events of a type this service does not know, passed by on a stream.",
            ["topic", "event_type"],
            registry=registry,
        )
        self.batch_events = Histogram(
            "ketenbus_batch_events",
            "Events committed together in one transaction.",
            registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )
        self.commands_together = Histogram(
            "ketenbus_commands_together",
            "HTTP commands carried out in one transaction (ketenbus.kit.together); 1: alone.",
            registry=registry,
            buckets=(1, 2, 5, 10, 20, 50),
        )
        self.handler_retries = Counter(
            "ketenbus_handler_retries",
            "Transient failures that were retried.",
            ["event_type"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "ketenbus_dlq_messages",
            "Messages sent to a dead-letter topic.",
            ["topic", "reason"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "ketenbus_outbox_backlog",
            "Committed events not yet published.",
            registry=registry,
        )
        self.outbox_published = Counter(
            "ketenbus_outbox_published",
            "Events the outbox relay published.",
            ["topic"],
            registry=registry,
        )
        # The outbox relay publishes without FastStream's publish middleware (see
        # OutboxRelay._send), so faststream_published_messages_* count only dead letters;
        # these say for the outbox what they said.
        self.outbox_publish_failures = Counter(
            "ketenbus_outbox_publish_failures",
            "Outbox records Kafka did not take; their batch stays in the outbox.",
            ["topic", "exception_type"],
            registry=registry,
        )
        self.outbox_publish_seconds = Histogram(
            "ketenbus_outbox_publish_seconds",
            "Time to publish one outbox batch, from its first send to Kafka's last confirmation.",
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.outbox_oldest_seconds = Gauge(
            "ketenbus_outbox_oldest_age_seconds",
            "Age of the oldest unpublished event.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "ketenbus_consumer_lag",
            "Messages behind the end of the partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.ready = Gauge(
            "ketenbus_ready",
            "1 when the service is ready to do its work.",
            registry=registry,
        )
        self.info = Gauge(
            "ketenbus_service_info", "The service this is.", ["service"], registry=registry
        )
        self.info.labels(**labels).set(1)
