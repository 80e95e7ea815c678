"""Apache Kafka and SecantusDB as the stack runs them: real servers on loopback, no mocks."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pymongo import AsyncMongoClient

from ketenbus.contracts import topics
from ketenbus.devstack import containers, kafka_provisioning, kafka_server
from ketenbus.devstack.errors import StartFailed
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.ports import LOOPBACK, PORT_RANGE_VARIABLE, free_port
from ketenbus.kit.broker import partitions_of

pytestmark = pytest.mark.stack


async def test_known_topics_exist_with_their_partition_counts(kafka: KafkaAccess) -> None:
    # The session broker was provisioned with partner "gemeente-utrecht" (see conftest.py);
    # provisioning again must leave everything as it is.
    partitions = await kafka_provisioning.create_topics(kafka, ["gemeente-utrecht"])

    wanted = kafka_provisioning.wanted_topics(["gemeente-utrecht"])
    assert partitions == {name: count for name, (count, _) in wanted.items()}
    assert partitions[topics.REFERRALS.name] == 3
    assert partitions[topics.REFERRALS.dlq] == 3
    assert partitions[topics.BENCHMARKS.name] == 1
    assert partitions["ketenbus.partners.gemeente-utrecht.inbound.v1"] == 1
    assert partitions["ketenbus.partners.gemeente-utrecht.outbound.v1.dlq"] == 1


async def test_every_topic_has_the_retention_the_registry_decides(kafka: KafkaAccess) -> None:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        names = [
            topics.REFERRALS.name,
            topics.REFERRALS.dlq,
            topics.partner_inbound("gemeente-utrecht").name,
        ]
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    retention = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}["retention.ms"]
        for response in described
        for resource in response.resources
    }
    assert retention == {
        topics.REFERRALS.name: "-1",  # the system of record: kept for ever
        topics.REFERRALS.dlq: str(topics.DEAD_LETTER_RETENTION_MS),
        topics.partner_inbound("gemeente-utrecht").name: str(topics.PARTNER_RETENTION_MS),
    }


async def test_a_message_round_trips_through_the_broker(kafka: KafkaAccess) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topics.TRAJECTORIES.name,
            b'{"type": "test"}',
            key=b"client-123",
            headers=[("correlationid", b"c-1")],
        )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(**kafka.client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(sent.topic, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        received = await consumer.getone()
    finally:
        await consumer.stop()

    assert (received.key, received.value) == (b"client-123", b'{"type": "test"}')
    assert received.headers == (("correlationid", b"c-1"),)


async def test_a_restarted_cluster_keeps_its_topics_records_and_offsets(tmp_path: Path) -> None:
    directory, logs = tmp_path / "kafka", tmp_path / "logs"
    cluster, nodes = kafka_server.start_cluster(directory, logs, outlive_caller=False)
    try:
        kafka = cluster.access()
        kafka_provisioning.provision(kafka)
        producer = AIOKafkaProducer(**kafka.client_options())
        await producer.start()
        try:
            for number in range(5):
                await producer.send_and_wait(topics.BENCHMARKS.name, b"%d" % number, key=b"k")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topics.BENCHMARKS.name,
            **kafka.client_options(),
            group_id="restart-test",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            first = await consumer.getmany(timeout_ms=10_000, max_records=3)
            await consumer.commit()
        finally:
            await consumer.stop()
        assert sum(len(records) for records in first.values()) == 3
    finally:
        for node in nodes:
            node.stop()

    cluster, nodes = kafka_server.start_cluster(directory, logs, outlive_caller=False)
    try:
        consumer = AIOKafkaConsumer(
            topics.BENCHMARKS.name,
            **cluster.access().client_options(),
            group_id="restart-test",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            rest = await consumer.getmany(timeout_ms=10_000)
        finally:
            await consumer.stop()
    finally:
        for node in nodes:
            node.stop()
    assert [r.value for records in rest.values() for r in records] == [b"3", b"4"]

    # Cleared (as `ketenbus demo` does): the same cluster, its topics made again, empty.
    assert kafka_server.clear_storage(directory)
    cluster, nodes = kafka_server.start_cluster(directory, logs, outlive_caller=False)
    try:
        kafka = cluster.access()
        kafka_provisioning.provision(kafka)
        consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
        await consumer.start()
        try:
            partitions = await partitions_of(consumer, [topics.BENCHMARKS.name])
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
    finally:
        for node in nodes:
            node.stop()
    assert partitions and set(ends.values()) == {0}


def test_a_cluster_whose_port_is_taken_fails_saying_so(tmp_path: Path) -> None:
    cluster = kafka_server.prepare(tmp_path / "kafka")
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, cluster.nodes[0].port))
        squatter.listen()
        with pytest.raises(StartFailed, match="is in use"):
            kafka_server.prepare(tmp_path / "kafka")


async def test_mongo_commits_a_transaction_across_collections(mongo_url: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        db = client["devstack_test_transactions"]
        await db.drop_collection("trajectories")
        await db.drop_collection("outbox")
        await db.create_collection("trajectories")
        await db.create_collection("outbox")
        async with client.start_session() as session, await session.start_transaction():
            await db.trajectories.insert_one({"_id": "t-1", "phase": "intake"}, session=session)
            await db.outbox.insert_one({"type": "TrajectoryOpened"}, session=session)

        assert await db.trajectories.count_documents({}) == 1
        assert await db.outbox.count_documents({}) == 1
    finally:
        await client.close()


def test_free_ports_come_from_the_configured_range(monkeypatch):
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "21000-21009")
    ports = {free_port() for _ in range(5)}
    assert len(ports) == 5 and all(21000 <= p <= 21009 for p in ports)


def test_a_malformed_port_range_is_refused_with_the_expected_shape(monkeypatch):
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "21000")
    with pytest.raises(ValueError, match="expected two ports"):
        free_port()


def test_an_unknown_engine_choice_is_refused(monkeypatch):
    monkeypatch.setenv(containers.VARIABLE, "docker-please")
    with pytest.raises(StartFailed, match="expected native or testcontainers"):
        containers.wanted()


def test_testcontainers_without_a_docker_engine_says_so(monkeypatch):
    monkeypatch.setenv(containers.VARIABLE, "testcontainers")
    assert containers.wanted()
    if shutil.which("dockerd") or Path("/var/run/docker.sock").exists():
        pytest.skip("a Docker engine may be here: this is what a machine without one shows")
    with pytest.raises(StartFailed, match="needs a Docker engine"), containers.kafka_container():
        pass
