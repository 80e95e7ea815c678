"""The stack fixtures as the cross-service tests see them."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import httpx
import pytest
from pymongo import AsyncMongoClient

from ketenbus.devstack.pytest_fixtures import ChainFactory
from ketenbus.devstack.topic_provisioning import create_topics, wanted_topics

pytestmark = pytest.mark.stack


async def test_the_session_broker_has_every_known_topic(kafka_bootstrap: str) -> None:
    assert await create_topics(kafka_bootstrap) == wanted_topics()


async def test_the_session_mongo_accepts_failpoints(mongo_url: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        answer = await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    finally:
        await client.close()
    assert answer["ok"] == 1.0


def test_a_chain_brings_its_own_mail_and_sms_sinks(
    chain: ChainFactory, kafka_bootstrap: str, mongo_url: str
) -> None:
    stack = chain()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.nl", "b@x.nl", "Afspraak"
    message.set_content("morgen")

    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)
    httpx.post(f"{stack.sms_url}/messages", json={"text": "morgen"}).raise_for_status()

    assert (stack.kafka_bootstrap, stack.mongo_url) == (kafka_bootstrap, mongo_url)
    assert [m["Subject"] for m in stack.mailbox()] == ["Afspraak"]
    assert [m["body"] for m in stack.sms_messages()] == [{"text": "morgen"}]
