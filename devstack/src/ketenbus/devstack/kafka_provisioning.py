"""Bringing a Kafka cluster to what the chain needs: users, ACLs, and every known topic.

Topics come from the registry in ketenbus.contracts.topics, each with its dead-letter topic,
its partition count and its retention (a compacted topic compacts within seconds here,
`QUICK_COMPACTION`); the broker never creates one by itself. A topic that
exists already keeps its partitions (they can only grow, and growing moves keys) and gets the
registry's settings again. Users and ACLs come from ketenbus.contracts.access; aiokafka has no
Admin API for SCRAM credentials or ACLs, so the stack's small Java tool (devstack/engines/kafka,
`nl.ketenbus.devstack.Provision`) applies them as `ketenbus-admin`.

On an external Kafka (KAFKA_BOOTSTRAP_SERVERS) only the topics are created: users and ACLs
are the operator's (deploy/k8s has them as Strimzi resources).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import subprocess
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ketenbus.contracts import access, topics
from ketenbus.devstack import engines, kafka_access, kafka_server
from ketenbus.devstack.errors import StartFailed
from ketenbus.devstack.kafka_access import ADMIN, MECHANISM, KafkaAccess
from ketenbus.devstack.private_files import write_private

_TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code

T = TypeVar("T")


# A compacted topic on the stack forgets within seconds, not the day of production
# (topics.CONTACT_COMPACTION): a segment rolls at the first record a second after it began,
# the log cleaner (its backoff is the broker's, kafka_server) cleans any dirt at all, and a
# tombstone stays a minute. So a test can await a card's removal.
QUICK_COMPACTION = topics.Compaction(
    segment_ms=1000,
    max_compaction_lag_ms=1000,
    min_cleanable_dirty_ratio=0.01,
    delete_retention_ms=60_000,
)


def wanted_topics(partner_ids: Sequence[str] = ()) -> dict[str, tuple[int, dict[str, str]]]:
    """Topic name -> (partitions, settings): internal and partner topics and their DLQs.

    A dead-letter topic gets the partition count of its topic so that a key lands in the same
    partition number in both, which keeps replaying dead letters in order simple.
    """
    registry = (*topics.INTERNAL_TOPICS, *topics.topics_for_partners(list(partner_ids)))
    wanted: dict[str, tuple[int, dict[str, str]]] = {}
    for topic in registry:
        settings = topic.config()
        if topic.compaction is not None:
            settings |= QUICK_COMPACTION.config()
        wanted[topic.name] = (topic.partitions, settings)
        wanted[topic.dlq] = (topic.partitions, topic.dlq_config())
    return wanted


async def create_topics(
    kafka: KafkaAccess,
    partner_ids: Sequence[str] = (),
    *,
    replication: int = 1,
    request_timeout: float = 30.0,
) -> dict[str, int]:
    """Create the wanted topics that do not exist yet and set every one's settings; returns
    each topic's partition count as the broker reports it."""
    wanted = wanted_topics(partner_ids)
    admin = AIOKafkaAdminClient(
        **kafka.client_options(ADMIN),
        client_id="ketenbus-devstack",
        request_timeout_ms=int(request_timeout * 1000),
    )
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(name, partitions, replication, topic_configs=settings)
                for name, (partitions, settings) in wanted.items()
            ],
            timeout_ms=int(request_timeout * 1000),
        )
        # Kafka answers per topic instead of raising: collect the real failures.
        failures = [
            f"{name}: {message or code}"
            for name, code, message in response.topic_errors
            if code not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if failures:
            raise StartFailed(
                f"could not create topics on {kafka.bootstrap}: {'; '.join(failures)}"
            )
        existing = [
            name for name, code, _ in response.topic_errors if code == _TOPIC_ALREADY_EXISTS
        ]
        if existing:
            await admin.alter_configs(
                [
                    ConfigResource(ConfigResourceType.TOPIC, name, configs=wanted[name][1])
                    for name in existing
                ]
            )
        # A topic just created may show no partitions for a moment: ask until all do.
        deadline = time.monotonic() + request_timeout
        while True:
            described = await admin.describe_topics(list(wanted))
            counts = {t["topic"]: len(t["partitions"]) for t in described}
            if all(counts.values()) or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


def grant_access(kafka: KafkaAccess, partner_ids: Sequence[str]) -> None:
    """Create the users of the chain and its partners (SCRAM-SHA-512) and their ACLs on the
    stack's own cluster, as `ketenbus-admin`.

    What was applied once is remembered (as digests, in `applied.sha256`), so a stack that
    joins a running cluster pays the JVM start only when it brings a new partner.
    """
    directory = kafka.directory
    assert directory is not None, "users and ACLs are made on the stack's own cluster only"
    users = kafka_access.load_or_create_users(directory, kafka_access.wanted_users(partner_ids))
    wanted = [f"user {user} {password}" for user, password in users.items() if user != ADMIN]
    wanted += [
        f"acl User:{g.user} {g.operation} {g.resource} {g.pattern} {g.name}"
        for g in access.all_grants(partner_ids)
    ]
    record = directory / "applied.sha256"
    applied = set(record.read_text("ascii").split()) if record.exists() else set()
    new = [line for line in wanted if _digest(line) not in applied]
    if not new:
        return
    plan = directory / "provision.plan"
    client = directory / "provision.properties"
    write_private(plan, "\n".join(new) + "\n")
    write_private(
        client,
        "\n".join(
            [
                f"bootstrap.servers={kafka.bootstrap}",
                "security.protocol=SASL_SSL",
                f"sasl.mechanism={MECHANISM}",
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
                f'required username="{ADMIN}" password="{users[ADMIN]}";',
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={kafka.ca_file}",
            ]
        )
        + "\n",
    )
    result = subprocess.run(
        [
            engines.java_binary(),
            "-Xmx256m",
            "-cp",
            engines.kafka_classpath(),
            "nl.ketenbus.devstack.Provision",
            str(client),
            str(plan),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    plan.unlink()
    if result.returncode != 0:
        raise StartFailed(
            f"could not create Kafka users and ACLs:\n{(result.stdout + result.stderr)[-3000:]}"
        )
    record.write_text("\n".join(sorted(applied | {_digest(line) for line in new})) + "\n")


def provision(
    kafka: KafkaAccess,
    partner_ids: Sequence[str] = (),
    *,
    replication: int | None = None,
    request_timeout: float = 30.0,
) -> dict[str, int]:
    """Users and ACLs (on the stack's own cluster), then the topics, replicated `replication`
    times (default: on every broker of our own cluster; 1 on a Kafka from outside)."""
    if not kafka.external:
        grant_access(kafka, partner_ids)
        if replication is None:
            replication = len(kafka_server.load(kafka.directory).nodes)  # type: ignore[arg-type]
    return _run(
        create_topics(
            kafka, partner_ids, replication=replication or 1, request_timeout=request_timeout
        )
    )


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Called from inside an event loop (an async test calling the sync stack API): a second
    # loop cannot run in this thread, so run it in a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
