"""The channel adapters against real servers: the devstack's mail and SMS sinks (as
processes), and two small SMTP servers that refuse or hang, for the failures a relay has."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from ketenbus.devstack.errors import StartFailed
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
from ketenbus.notifications.settings import NotificationSettings
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


def mailer(port: int, timeout: float = 5.0, **security: Any) -> Mailer:
    return Mailer(
        host="127.0.0.1",
        port=port,
        sender="Ketenbus <geen-antwoord@ketenbus.example>",
        timeout=timeout,
        message_domain="ketenbus.test",
        **({"security": "none"} | security),  # the sinks here are on loopback
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

    def start(handler: object, **options: Any) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
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


# ---------------------------------------------------------------- TLS to the relay


class Recording:
    """Keeps what a client told it: the sender given, and the mails."""

    def __init__(self) -> None:
        self.senders: list[str] = []
        self.mails: list[bytes] = []

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.senders.append(address)
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.mails.append(envelope.content)
        return "250 OK"


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A certificate for 127.0.0.1: the relay's TLS context, and the file a client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "relay.crt", directory / "relay.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def test_a_relay_without_starttls_gets_nothing_not_even_the_sender(smtp_server):
    """No downgrade: a relay (or someone in between) that does not offer STARTTLS gets no
    login, no envelope, no mail; the failure is the channel's, retried or fallen back on."""
    relay = Recording()
    port = smtp_server(relay)
    outcome = await mailer(port, security="starttls", username="ketenbus", password="geheim").send(
        parcel("rem_" + "7" * 32)
    )
    assert isinstance(outcome, TransientFailure)
    assert relay.senders == [] and relay.mails == []


async def test_starttls_to_a_relay_whose_certificate_is_trusted_delivers(smtp_server, tmp_path):
    relay = Recording()
    context, certificate = self_signed(tmp_path)
    port = smtp_server(relay, tls_context=context, require_starttls=True)
    untrusted = await mailer(port, security="starttls").send(parcel("rem_" + "8" * 32))
    assert isinstance(untrusted, TransientFailure)  # system CAs do not know this relay
    assert relay.mails == []
    trusted = await mailer(port, security="starttls", ca_file=str(certificate)).send(
        parcel("rem_" + "9" * 32)
    )
    assert isinstance(trusted, Delivered)
    assert len(relay.mails) == 1 and b"Beste Sanne" in relay.mails[0]


def test_the_service_refuses_to_start_with_plain_smtp_to_a_relay_off_this_machine():
    with pytest.raises(ValidationError, match="SMTP_SECURITY=none for a relay that is not on"):
        NotificationSettings(
            contact_sharing_key="k", smtp_host="smtp.example.org", smtp_security="none"
        )
    # Unset: TLS is required off the machine, and plain only for the loopback sink.
    remote = NotificationSettings(contact_sharing_key="k", smtp_host="10.0.0.25")
    assert remote.mail_security == "starttls"
    for loopback in ("127.0.0.1", "::1", "localhost"):
        sink = NotificationSettings(contact_sharing_key="k", smtp_host=loopback)
        assert sink.mail_security == "none"
    implicit = NotificationSettings(
        contact_sharing_key="k", smtp_host="smtp.example.org", smtp_security="tls"
    )
    assert implicit.mail_security == "tls"


@pytest.mark.stack
def test_the_notifications_process_will_not_start_with_plain_smtp_to_a_remote_relay(chain):
    """The real process, not only its settings: SMTP without TLS to a relay off this machine
    stops notifications before it is ready, and its log says why."""
    stack = chain([])
    stack.start_service("notifications", {"SMTP_HOST": "smtp.example.org", "SMTP_SECURITY": "none"})
    with pytest.raises(StartFailed, match="SMTP_SECURITY=none for a relay that is not on"):
        stack.wait_ready("notifications", timeout=60)
