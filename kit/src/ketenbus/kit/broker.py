"""The FastStream Kafka broker, configured from settings, with Prometheus middleware."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from prometheus_client import CollectorRegistry

from ketenbus.kit.settings import ServiceSettings


def security(settings: ServiceSettings) -> BaseSecurity | None:
    """FastStream's security object for the settings' protocol (None for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
        raise ValueError(f"{protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    sasl: dict[str, type[Any]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return sasl[settings.kafka_sasl_mechanism](
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """Connection options for a plain aiokafka client (a replay, an admin task), with the
    same security the service's broker uses."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    chosen = security(settings)
    if chosen is None:
        return options
    if chosen.ssl_context is not None:
        options["ssl_context"] = chosen.ssl_context
    if settings.kafka_security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=(
                settings.kafka_sasl_password.get_secret_value()
                if settings.kafka_sasl_password
                else None
            ),
        )
    return options


def create_broker(settings: ServiceSettings, registry: CollectorRegistry) -> KafkaBroker:
    return KafkaBroker(
        # A list: FastStream takes one string for one address, so "a:9092,b:9092" would be
        # looked up as a single host name.
        [address.strip() for address in settings.kafka_bootstrap_servers.split(",")],
        client_id=f"ketenbus-{settings.service_name}",
        # Every event is written once per send, and acknowledged by every in-sync replica.
        enable_idempotence=True,
        acks="all",
        security=security(settings),
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=settings.service_name)],
        # Through stdlib logging, so the JSON renderer and the personal-data filter apply;
        # FastStream's per-message "Received"/"Processed" lines only at DEBUG.
        logger=logging.getLogger("ketenbus.faststream"),
        log_level=logging.DEBUG,
        graceful_timeout=15.0,
        # Topics are declared by deployment (the stack, Strimzi, compose), with their partition
        # counts and retention; a service never asks the broker to make one.
        allow_auto_create_topics=False,
    )


async def partitions_of(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of those of the topics that exist, in order."""
    known = await fresh_partitions(consumer)
    return [
        TopicPartition(topic, p) for topic in topics if topic in known for p in sorted(known[topic])
    ]


async def fresh_partitions(consumer: AIOKafkaConsumer) -> dict[str, set[int]]:
    """Each topic the consumer's user may see, with its partitions, as the brokers know them
    now. A consumer's own metadata learns of a topic made after it started only at its next
    periodic refresh, and partitions_for_topic() answers None until then."""
    cluster = await consumer._client.fetch_all_metadata()
    return {topic: set(cluster.partitions_for_topic(topic) or ()) for topic in cluster.topics()}
