"""Tansu and SecantusDB as the stack runs them: real servers on loopback, no mocks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from ketenbus.contracts import topics
from ketenbus.devstack.errors import StartFailed
from ketenbus.devstack.kafka_server import start_kafka
from ketenbus.devstack.ports import LOOPBACK, PORT_RANGE_VARIABLE, free_port
from ketenbus.devstack.topic_provisioning import create_topics, wanted_topics

pytestmark = pytest.mark.stack


async def test_known_topics_exist_with_their_partition_counts(kafka_bootstrap: str) -> None:
    # The session broker was provisioned with partner "gemeente-utrecht" (see conftest.py);
    # provisioning again must leave everything as it is.
    partitions = await create_topics(kafka_bootstrap, ["gemeente-utrecht"])

    assert partitions == wanted_topics(["gemeente-utrecht"])
    assert partitions[topics.REFERRALS.name] == 3
    assert partitions[topics.REFERRALS.dlq] == 3
    assert partitions[topics.BENCHMARKS.name] == 1
    assert partitions["ketenbus.partners.gemeente-utrecht.inbound.v1"] == 1
    assert partitions["ketenbus.partners.gemeente-utrecht.outbound.v1.dlq"] == 1


async def test_a_message_round_trips_through_the_broker(kafka_bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
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

    # Assigned by hand: a consumer group's first assignment takes seconds on Tansu.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
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


def test_a_broker_on_a_taken_port_fails_with_its_log(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(StartFailed, match="kafka exited during start-up"):
            start_kafka(tmp_path / "kafka.log", port=taken, outlive_caller=False)


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


async def test_mongo_runs_with_failpoints_enabled(mongo_url: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        answer = await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    finally:
        await client.close()
    assert answer["ok"] == 1.0


def test_free_ports_come_from_the_configured_range(monkeypatch):
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "21000-21009")
    ports = {free_port() for _ in range(5)}
    assert len(ports) == 5 and all(21000 <= p <= 21009 for p in ports)


def test_a_malformed_port_range_is_refused_with_the_expected_shape(monkeypatch):
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "21000")
    with pytest.raises(ValueError, match="expected two ports"):
        free_port()
