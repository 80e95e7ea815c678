"""The channel adapters against real servers: the devstack's mail and SMS sinks (as
processes), and two small SMTP servers that refuse or hang, for the failures a relay has."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller

from ketenbus.devstack.mail_sink import read_mailbox, start_mail_sink
from ketenbus.devstack.ports import free_port
from ketenbus.devstack.processes import RunningProcess
from ketenbus.devstack.sms_sink import (
    clear_script,
    read_sms,
    read_sms_attempts,
    script_statuses,
    start_sms_sink,
)
from ketenbus.notifications.channels import JsonSms, Mailer, MessageBirdSms, Parcel
from ketenbus.notifications.domain import (
    Delivered,
    Lookup,
    PermanentFailure,
    TransientFailure,
)
from ketenbus.notifications.templates import Message, as_html

SENT_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MAIL = Message(
    subject="Herinnering: uw afspraak op dinsdag 3 maart",
    text="Beste Sanne,\n\nTot morgen!\n\nhttps://x.example/v1/opt-out/t",
    html=as_html("Beste Sanne,\n\nTot morgen!\n\nhttps://x.example/v1/opt-out/t"),
)
SMS = Message(subject="", text="Hallo Sanne, herinnering: afspraak op di 3 mrt 10:00.")


@pytest.fixture(scope="module")
def sinks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningProcess]]:
    home = tmp_path_factory.mktemp("channel-sinks")
    mail = start_mail_sink(home / "mail", home / "mail.log", outlive_caller=False)
    sms = start_sms_sink(home / "sms", home / "sms.log", outlive_caller=False)
    try:
        yield {"mail": mail, "sms": sms, "home": home}  # type: ignore[dict-item]
    finally:
        mail.stop()
        sms.stop()


def mailer(port: int, timeout: float = 5.0) -> Mailer:
    return Mailer(
        host="127.0.0.1",
        port=port,
        sender="Ketenbus <geen-antwoord@ketenbus.example>",
        timeout=timeout,
        message_domain="ketenbus.test",
    )


def parcel(reference: str, message: Message = MAIL, address: str = "sanne@example.org"):
    return Parcel(
        address,
        message,
        reference,
        SENT_AT,
        unsubscribe_url="https://x.example/v1/opt-out/t",
        originator="WelzijnU",
    )


async def test_a_mail_goes_out_as_plain_text_and_html_with_a_stable_message_id(sinks):
    outcome = await mailer(sinks["mail"].port).send(parcel("rem_" + "1" * 32))

    assert isinstance(outcome, Delivered)
    [mail] = [m for m in read_mailbox(sinks["home"] / "mail") if "1" * 32 in m["Message-ID"]]
    assert mail["Message-ID"] == f"<rem_{'1' * 32}@ketenbus.test>"
    assert mail["To"] == "sanne@example.org"
    assert mail["Date"] == "Mon, 02 Mar 2026 10:00:00 +0000"  # the chain's clock
    assert mail["List-Unsubscribe"] == "<https://x.example/v1/opt-out/t>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().startswith("Beste Sanne,")
    assert '<a href="https://x.example/v1/opt-out/t">' in mail.get_body(("html",)).get_content()
    assert mail.get_content().startswith("Beste Sanne,")  # what a text-only reader shows


async def test_a_relay_that_is_not_there_is_a_transient_failure_that_sent_nothing():
    outcome = await mailer(free_port(), timeout=2).send(parcel("rem_" + "2" * 32))
    assert isinstance(outcome, TransientFailure)
    assert outcome.maybe_delivered is False
    assert await mailer(free_port()).lookup("rem_" + "2" * 32) == (Lookup.UNKNOWN, None)


class Refusing:
    async def handle_RCPT(self, server, session, envelope, address, options):
        return "550 5.1.1 no such mailbox"


class Hanging:
    """Takes the message and never answers: the server's stop (at the fixture's end) cancels
    the wait."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.Event().wait()
        return "250 OK"


@pytest.fixture
def smtp_server():
    controllers: list[Controller] = []

    def start(handler: object) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


async def test_a_refused_recipient_is_permanent_and_a_cut_off_data_may_have_arrived(smtp_server):
    refused = await mailer(smtp_server(Refusing())).send(parcel("rem_" + "3" * 32))
    assert refused == PermanentFailure("the mail relay refused the message (SMTP 550)")

    hung = await mailer(smtp_server(Hanging()), timeout=1).send(parcel("rem_" + "4" * 32))
    assert isinstance(hung, TransientFailure)
    assert hung.maybe_delivered is True  # so the next attempt looks before it sends


async def test_the_json_sms_adapter_delivers_once_per_reference_and_finds_it_again(sinks):
    sms_url = sinks["sms"].url
    clear_script(sms_url)
    adapter = JsonSms(sms_url, timeout=5, token=None)
    reference = "rem_" + "5" * 32
    try:
        assert await adapter.lookup(reference) == (Lookup.NOT_FOUND, None)
        first = await adapter.send(parcel(reference, SMS, "+31612345678"))
        again = await adapter.send(parcel(reference, SMS, "+31612345678"))
        found = await adapter.lookup(reference)
    finally:
        await adapter.close()

    assert isinstance(first, Delivered) and first == again  # the provider's promise
    assert found == (Lookup.FOUND, first.provider_id)
    delivered = [m for m in read_sms(sinks["home"] / "sms") if m["body"]["reference"] == reference]
    assert len(delivered) == 1
    assert delivered[0]["path"] == "/messages"
    assert delivered[0]["body"] == {
        "to": "+31612345678",
        "from": "WelzijnU",
        "body": SMS.text,
        "reference": reference,
    }


async def test_provider_errors_are_told_apart(sinks):
    sms_url = sinks["sms"].url
    adapter = JsonSms(sms_url, timeout=5, token=None)
    try:
        script_statuses(sms_url, [500, 429, 400])
        failing = await adapter.send(parcel("rem_" + "6" * 32, SMS, "+31612345678"))
        busy = await adapter.send(parcel("rem_" + "6" * 32, SMS, "+31612345678"))
        refused = await adapter.send(parcel("rem_" + "6" * 32, SMS, "+31612345678"))
    finally:
        await adapter.close()
    assert failing == TransientFailure("the SMS provider is failing (HTTP 500)")
    assert busy == TransientFailure("the SMS provider is failing (HTTP 429)")
    assert refused == PermanentFailure("the SMS provider refused the message (HTTP 400)")


async def test_an_answer_that_never_comes_may_mean_delivered_and_the_lookup_settles_it(sinks):
    sms_url = sinks["sms"].url
    script_statuses(sms_url, [200], hold_seconds=[1.5])
    adapter = JsonSms(sms_url, timeout=0.5, token=None)
    reference = "rem_" + "7" * 32
    try:
        outcome = await adapter.send(parcel(reference, SMS, "+31612345678"))
        found, provider_id = await adapter.lookup(reference)
    finally:
        await adapter.close()
    assert isinstance(outcome, TransientFailure) and outcome.maybe_delivered is True
    assert found is Lookup.FOUND and provider_id


async def test_the_bird_adapter_speaks_birds_request_format(sinks):
    sms_url = sinks["sms"].url
    clear_script(sms_url)
    adapter = MessageBirdSms(sms_url, timeout=5, token="live_abc")
    reference = "rem_" + "8" * 32
    try:
        outcome = await adapter.send(parcel(reference, SMS, "+31612345678"))
        lookup = await adapter.lookup(reference)
    finally:
        await adapter.close()
    assert isinstance(outcome, Delivered)
    assert lookup == (Lookup.UNKNOWN, None)  # Bird cannot be asked by reference
    [attempt] = [
        a
        for a in read_sms_attempts(sinks["home"] / "sms")
        if isinstance(a["body"], dict) and a["body"].get("reference") == reference
    ]
    assert attempt["path"] == "/messages"
    assert attempt["body"] == {
        "originator": "WelzijnU",
        "recipients": ["31612345678"],
        "body": SMS.text,
        "reference": reference,
        "datacoding": "auto",
    }
