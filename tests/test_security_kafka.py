"""Kafka security on the embedded Apache Kafka, as in production: SASL_SSL with SCRAM-SHA-512,
the stack's own CA, a user per service and per partner, and ACLs (ketenbus.contracts.access).

Every refusal here is Kafka's own: the tests connect with real clients, as the user named,
and assert what the broker answered. The session's broker is the one every chain test runs
on, so what is proven here is what the services live with.
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from prometheus_client import CollectorRegistry

from ketenbus.contracts import access, topics
from ketenbus.devstack.kafka_access import ADMIN, KafkaAccess
from ketenbus.kit.broker import create_broker

pytestmark = pytest.mark.stack

GP, DEBT = "huisarts-de-linde", "schuldhulp-midden"  # two of the session's partners


@pytest.fixture(autouse=True)
def _our_own_broker(kafka: KafkaAccess) -> None:
    if kafka.external:  # KAFKA_BOOTSTRAP_SERVERS or testcontainers: not our users and ACLs
        pytest.skip("Kafka security is tested on the stack's own broker (unset the override)")


async def produce(
    options: dict[str, Any], topic: str, timeout_ms: int = 10_000, value: bytes | None = b"{}"
) -> None:
    producer = AIOKafkaProducer(**options, request_timeout_ms=timeout_ms)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def fetch(options: dict[str, Any], topic: str, group: str | None) -> None:
    """Subscribe as a member of `group` (None: as no group's member, so a service's live
    group is left alone) and fetch once: Kafka refuses an unauthorised topic (or group) in its
    answer, and aiokafka raises it."""
    consumer = AIOKafkaConsumer(
        topic,
        **options,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=10_000,
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=5_000)
    finally:
        await consumer.stop()


def test_the_partners_of_these_tests_are_the_sessions(partner_organisations: list[str]) -> None:
    assert {GP, DEBT} <= set(partner_organisations)


async def test_a_client_without_credentials_is_refused(kafka: KafkaAccess) -> None:
    options = kafka.client_options()
    # TLS as it should be, but no SASL login: the listener accepts SASL_SSL only.
    for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        del options[key]
    options["security_protocol"] = "SSL"
    with pytest.raises(KafkaConnectionError):
        await produce(options, topics.REFERRALS.name)


async def test_a_plaintext_client_is_refused(kafka: KafkaAccess) -> None:
    with pytest.raises(KafkaConnectionError):
        await produce({"bootstrap_servers": kafka.bootstrap}, topics.REFERRALS.name)


async def test_a_wrong_password_is_refused(kafka: KafkaAccess) -> None:
    options = kafka.client_options(access.service_user("intake"))
    options["sasl_plain_password"] = "not-the-password"
    with pytest.raises(KafkaConnectionError):
        await produce(options, topics.REFERRALS.name)


async def test_a_user_that_does_not_exist_is_refused(kafka: KafkaAccess) -> None:
    options = kafka.client_options()
    options["sasl_plain_username"] = "partner-nobody"
    with pytest.raises(KafkaConnectionError):
        await produce(options, topics.REFERRALS.name)


async def test_a_broker_not_signed_by_the_stacks_ca_is_not_trusted(kafka: KafkaAccess) -> None:
    options = kafka.client_options()
    options["ssl_context"] = ssl.create_default_context()  # the system's CAs only
    with pytest.raises(KafkaConnectionError):
        await produce(options, topics.REFERRALS.name)


async def test_a_partner_writes_its_own_inbound_topic_and_reads_its_own_outbound(
    kafka: KafkaAccess,
) -> None:
    gp = kafka.client_options(access.partner_user(GP))
    await produce(gp, topics.partner_inbound(GP).name)
    await fetch(gp, topics.partner_outbound(GP).name, f"{GP}.test")


async def test_a_partner_cannot_read_another_partners_outbound_topic(kafka: KafkaAccess) -> None:
    gp = kafka.client_options(access.partner_user(GP))
    with pytest.raises(TopicAuthorizationFailedError):
        await fetch(gp, topics.partner_outbound(DEBT).name, f"{GP}.test")


async def test_a_partner_cannot_write_another_partners_inbound_topic(kafka: KafkaAccess) -> None:
    gp = kafka.client_options(access.partner_user(GP))
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(gp, topics.partner_inbound(DEBT).name)


async def test_a_partner_cannot_read_the_chains_own_streams(kafka: KafkaAccess) -> None:
    gp = kafka.client_options(access.partner_user(GP))
    with pytest.raises(TopicAuthorizationFailedError):
        await fetch(gp, topics.CLIENTS.name, f"{GP}.test")


async def test_a_service_cannot_write_a_topic_it_does_not_own(kafka: KafkaAccess) -> None:
    learning = kafka.client_options(access.service_user("learning"))
    await produce(learning, topics.ENROLMENTS.name)  # its own
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(learning, topics.REFERRALS.name)  # intake's


async def test_a_service_cannot_read_a_stream_it_does_not_consume(kafka: KafkaAccess) -> None:
    # Learning has no business with the notifications' delivery stream.
    learning = kafka.client_options(access.service_user("learning"))
    with pytest.raises(TopicAuthorizationFailedError):
        await fetch(learning, topics.DELIVERIES.name, "learning")


async def test_the_contact_cards_are_read_by_their_holders_and_written_by_intake_alone(
    kafka: KafkaAccess,
) -> None:
    # Notifications and trajectory hold a sealed card (their own, the debt partner's).
    for holder in ("notifications", "trajectory"):
        await fetch(kafka.client_options(access.service_user(holder)), topics.CONTACTS.name, None)
    learning = kafka.client_options(access.service_user("learning"))
    with pytest.raises(TopicAuthorizationFailedError):
        await fetch(learning, topics.CONTACTS.name, "learning")
    # A tombstone is a write: only intake, which shares the cards, may take one back. (The
    # key is no card's: the readers of the session's chain pass it by.)
    intake = kafka.client_options(access.service_user("intake"))
    await produce(intake, topics.CONTACTS.name, value=None)
    trajectory = kafka.client_options(access.service_user("trajectory"))
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(trajectory, topics.CONTACTS.name, value=None)


@pytest.mark.parametrize("user", [access.service_user("intake"), access.partner_user(GP)])
async def test_nobody_but_the_operator_creates_topics(kafka: KafkaAccess, user: str) -> None:
    name = f"test.security.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka.client_options(user))
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()
    [(topic, code, _message)] = response.topic_errors
    assert (topic, code) == (name, 29)  # TOPIC_AUTHORIZATION_FAILED


async def delete_records(options: dict[str, Any], topic: str) -> int:
    """DeleteRecords before offset 0 of partition 0: authorised or not like any deletion, but
    deletes nothing (the session's other tests keep their records). The low watermark."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        partition = TopicPartition(topic, 0)
        deleted = await admin.delete_records({partition: RecordsToDelete(0)})
    finally:
        await admin.close()
    return deleted[partition]


async def test_only_the_purger_deletes_dead_letters_and_nobody_a_streams_records(
    kafka: KafkaAccess,
) -> None:
    # Trajectory forgets erased clients' dead letters (ketenbus.kit.dead_letter_purges), on
    # Kafka 4 through aiokafka's admin client; nobody else deletes, and nobody on a stream.
    dlq = topics.dead_letter_topic(topics.CLIENTS.name)
    purger = kafka.client_options(access.service_user(access.DEAD_LETTER_PURGER))
    assert await delete_records(purger, dlq) >= 0
    learning = kafka.client_options(access.service_user("learning"))
    with pytest.raises(TopicAuthorizationFailedError):
        await delete_records(learning, dlq)  # it writes letters there, it does not delete
    with pytest.raises(TopicAuthorizationFailedError):
        await delete_records(purger, topics.CLIENTS.name)


async def test_a_topic_a_client_names_is_not_created_by_the_broker(kafka: KafkaAccess) -> None:
    name = f"test.security.{uuid.uuid4().hex[:8]}"
    with pytest.raises(KafkaError):
        await produce(kafka.client_options(ADMIN), name, timeout_ms=3_000)
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        assert name not in await admin.list_topics()
    finally:
        await admin.close()


async def test_a_service_publishes_through_the_kit_as_its_own_user(kafka: KafkaAccess) -> None:
    # The kit's broker: idempotent producer, acks=all, SASL_SSL as the service's user.
    settings = kafka.service_settings(access.service_user("learning"), service_name="learning")
    broker = create_broker(settings, CollectorRegistry())
    await broker.start()
    try:
        await broker.publish(b"{}", topics.ENROLMENTS.name, key=b"k")
        with pytest.raises(TopicAuthorizationFailedError):
            await broker.publish(b"{}", topics.TRAJECTORIES.name, key=b"k")
    finally:
        await broker.stop()
