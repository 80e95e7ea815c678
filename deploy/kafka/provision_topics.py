"""Create Ketenbus's Kafka topics on Apache Kafka, before any service starts.

Run by the `kafka-topics` one-shot container of deploy/docker-compose.yml, inside a service
image (which has ketenbus.contracts and aiokafka, and not the devstack):

    python /opt/ketenbus/provision_topics.py            # create what is missing
    python /opt/ketenbus/provision_topics.py --dry-run  # print the plan

The topic list is ketenbus.contracts.topics, the one registry the services publish from: every
internal topic, the inbound and outbound topic of each partner in PARTNER_ORGANISATIONS, and a
`.dlq` topic beside each. The broker has auto-creation off, so a topic that is not created
here does not exist: a partition count cannot shrink later, and a typo must not become a topic.

Settings (environment): KAFKA_BOOTSTRAP_SERVERS, PARTNER_ORGANISATIONS (comma-separated),
KAFKA_REPLICATION_FACTOR (default 1: one broker), and the connection settings the services
read too (ketenbus.kit.settings): KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM,
KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE. Existing topics are left as they
are; one whose partition count differs from the registry is reported and fails the run, since
repartitioning moves keys between partitions and so breaks per-client ordering.

On Kubernetes, Strimzi's KafkaTopic resources in deploy/k8s do the same.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ketenbus.contracts import topics
from ketenbus.kit.settings import ServiceSettings

TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code


@dataclass(frozen=True)
class PlannedTopic:
    name: str
    partitions: int
    config: dict[str, str]


def partner_ids_from(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def planned_topics(partner_ids: Sequence[str] = ()) -> list[PlannedTopic]:
    """Every topic with its partition count; a dead-letter topic gets its topic's count, so a
    key lands on the same partition number in both (replaying dead letters in order is simple).
    """
    registry = (*topics.INTERNAL_TOPICS, *topics.topics_for_partners(list(partner_ids)))
    planned: list[PlannedTopic] = []
    for topic in registry:
        # Retention as the registry decides it (ketenbus.contracts.topics says why).
        planned.append(PlannedTopic(topic.name, topic.partitions, topic.config()))
        planned.append(PlannedTopic(topic.dlq, topic.partitions, topic.dlq_config()))
    return planned


def connection_options(settings: ServiceSettings) -> dict[str, Any]:
    """aiokafka's keyword arguments for the security settings, read as the services read them
    (ketenbus.kit.broker does the same for FastStream)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        options["ssl_context"] = ssl.create_default_context(cafile=cafile)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
            raise ValueError(f"{protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


async def provision(
    bootstrap: str,
    planned: list[PlannedTopic],
    replication_factor: int,
    attempts: int = 30,
    connection: dict[str, Any] | None = None,
) -> list[str]:
    """Create the missing topics; returns the problems found (empty when all is well)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="ketenbus-provisioning", **(connection or {})
    )
    for attempt in range(1, attempts + 1):
        try:
            await admin.start()
            break
        except Exception as error:  # the broker may still be starting
            if attempt == attempts:
                raise
            print(f"kafka not reachable yet ({type(error).__name__}), retrying", file=sys.stderr)
            await asyncio.sleep(2)
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    topic.name,
                    topic.partitions,
                    replication_factor=replication_factor,
                    topic_configs=topic.config,
                )
                for topic in planned
            ],
            timeout_ms=30_000,
        )
        problems = [
            f"{name}: {message or code}"
            for name, code, message in response.topic_errors
            if code not in (0, TOPIC_ALREADY_EXISTS)
        ]
        actual = await _partition_counts(admin, [topic.name for topic in planned])
        for topic in planned:
            if actual.get(topic.name) != topic.partitions:
                problems.append(
                    f"{topic.name}: {actual.get(topic.name)} partitions, the registry says "
                    f"{topic.partitions}"
                )
        return problems
    finally:
        await admin.close()


async def _partition_counts(admin: Any, names: list[str], timeout: float = 30.0) -> dict[str, int]:
    """Each topic's partition count, once every broker's metadata shows the new topics (a
    topic just created may show no partitions for a moment)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(names)
        counts = {entry["topic"]: len(entry["partitions"]) for entry in described}
        if all(counts.values()) or asyncio.get_running_loop().time() > deadline:
            return counts
        await asyncio.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan, create nothing")
    args = parser.parse_args(argv)
    partner_ids = partner_ids_from(os.environ.get("PARTNER_ORGANISATIONS", ""))
    planned = planned_topics(partner_ids)
    for topic in planned:
        config = " ".join(f"{key}={value}" for key, value in topic.config.items())
        print(f"{topic.name} partitions={topic.partitions} {config}".rstrip())
    if args.dry_run:
        return 0
    settings = ServiceSettings()
    problems = asyncio.run(
        provision(
            settings.kafka_bootstrap_servers,
            planned,
            int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1")),
            connection=connection_options(settings),
        )
    )
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
