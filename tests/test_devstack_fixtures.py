"""The stack fixtures as the cross-service tests see them."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import httpx
import pytest
from pymongo import AsyncMongoClient

from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.kafka_provisioning import create_topics, wanted_topics
from ketenbus.devstack.pytest_fixtures import ChainFactory

pytestmark = pytest.mark.stack


async def test_the_session_broker_has_every_known_topic(kafka: KafkaAccess) -> None:
    wanted = {name: partitions for name, (partitions, _) in wanted_topics().items()}
    assert await create_topics(kafka) == wanted


async def test_the_session_mongo_is_secantusd_rs_and_runs_transactions(mongo_url: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        hello = await client.admin.command("hello")
        collection = client["fixtures_test"]["transactions"]
        async with client.start_session() as session, await session.start_transaction():
            await collection.insert_one({"_id": "in-a-transaction"}, session=session)
        assert await collection.count_documents({"_id": "in-a-transaction"}) == 1
    finally:
        await client.close()
    assert hello["setName"]  # a one-node replica set, as transactions need


def test_a_chain_brings_its_own_mail_and_sms_sinks(
    chain: ChainFactory, kafka: KafkaAccess, mongo_url: str
) -> None:
    stack = chain()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.nl", "b@x.nl", "Afspraak"
    message.set_content("morgen")

    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)
    httpx.post(f"{stack.sms_url}/messages", json={"text": "morgen"}).raise_for_status()

    assert (stack.kafka, stack.mongo_url) == (kafka, mongo_url)
    assert [m["Subject"] for m in stack.mailbox()] == ["Afspraak"]
    assert [m["body"] for m in stack.sms_messages()] == [{"text": "morgen"}]
