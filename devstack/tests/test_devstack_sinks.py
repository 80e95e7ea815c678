"""The mail and SMS sinks, each run as its own process the way the stack runs them."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from ketenbus.devstack.mail_sink import LatestHeaders, Mailbox, read_mailbox, start_mail_sink
from ketenbus.devstack.processes import RunningProcess
from ketenbus.devstack.sms_sink import (
    clear_script,
    read_sms,
    read_sms_attempts,
    script_statuses,
    start_sms_sink,
)


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[RunningProcess]:
    sink = start_mail_sink(tmp_path / "mail", tmp_path / "mail.log", outlive_caller=False)
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="module")
def sms_sink_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProcess]:
    home = tmp_path_factory.mktemp("sms-sink")
    sink = start_sms_sink(home / "sms", home / "sms.log", outlive_caller=False)
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def sms_sink(sms_sink_process: RunningProcess) -> RunningProcess:
    """The module's SMS sink, emptied and unscripted (one process: starting one takes a second)."""
    clear_script(sms_sink_process.url)
    for stored in sms_dir(sms_sink_process).glob("*.jsonl"):
        stored.unlink()  # the sink opens the file anew for every line it appends
    return sms_sink_process


def sms_dir(sink: RunningProcess) -> Path:
    return sink.log_path.parent / "sms"


def _reminder(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "noreply@ketenbus.example"
    message["To"] = "client@example.org"
    message["Subject"] = subject
    message.set_content("Uw afspraak is morgen om 10:00.")
    return message


def test_mail_sink_keeps_every_message_in_arrival_order(
    mail_sink: RunningProcess, tmp_path: Path
) -> None:
    with smtplib.SMTP("127.0.0.1", mail_sink.port, timeout=10) as smtp:
        smtp.send_message(_reminder("Herinnering 1"))
        smtp.send_message(_reminder("Herinnering 2"), to_addrs=["client@example.org", "bcc@x.nl"])

    mailbox = read_mailbox(tmp_path / "mail")

    assert [m["Subject"] for m in mailbox] == ["Herinnering 1", "Herinnering 2"]
    assert mailbox[0].get_content() == "Uw afspraak is morgen om 10:00.\n"
    assert mailbox[1]["X-Original-To"] == "client@example.org, bcc@x.nl"
    assert mailbox[0]["Return-Path"] == "<noreply@ketenbus.example>"
    assert not [p for p in (tmp_path / "mail").iterdir() if p.suffix != ".eml"]


def test_an_empty_or_missing_mailbox_reads_as_no_mail(tmp_path: Path) -> None:
    assert read_mailbox(tmp_path / "nothing-here") == []


def test_sms_sink_stores_a_message_and_answers_like_a_provider(
    sms_sink: RunningProcess,
) -> None:
    response = httpx.post(f"{sms_sink.url}/v1/messages", json={"to": "+31612345678", "text": "Hoi"})

    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    [stored] = read_sms(sms_dir(sms_sink))
    assert stored["path"] == "/v1/messages"
    assert stored["body"] == {"to": "+31612345678", "text": "Hoi"}
    assert stored["id"] == response.json()["id"]
    assert stored["received_at"]


def test_a_scripted_failure_is_answered_and_not_delivered(
    sms_sink: RunningProcess,
) -> None:
    script_statuses(sms_sink.url, [500, 200])

    first = httpx.post(f"{sms_sink.url}/send", json={"text": "poging 1"})
    second = httpx.post(f"{sms_sink.url}/send", json={"text": "poging 2"})
    third = httpx.post(f"{sms_sink.url}/send", json={"text": "poging 3"})

    assert [first.status_code, second.status_code, third.status_code] == [500, 200, 200]
    assert [m["body"]["text"] for m in read_sms(sms_dir(sms_sink))] == ["poging 2", "poging 3"]
    attempts = read_sms_attempts(sms_dir(sms_sink))
    assert [(a["body"]["text"], a["status"]) for a in attempts] == [
        ("poging 1", 500),
        ("poging 2", 200),
        ("poging 3", 200),
    ]
    assert attempts[0]["id"] is None


def test_clearing_the_script_restores_plain_acceptance(sms_sink: RunningProcess) -> None:
    script_statuses(sms_sink.url, [503, 503])
    clear_script(sms_sink.url)

    assert httpx.post(f"{sms_sink.url}/send", json={}).status_code == 200
    assert httpx.get(f"{sms_sink.url}/_control/script").json() == {"statuses": []}


def test_sms_sink_rejects_a_body_that_is_not_json(
    sms_sink: RunningProcess,
) -> None:
    response = httpx.post(f"{sms_sink.url}/send", content=b"to=+316&text=hoi")

    assert response.status_code == 400
    assert read_sms(sms_dir(sms_sink)) == []
    assert read_sms_attempts(sms_dir(sms_sink))[0]["status"] == 400


def test_a_script_with_an_impossible_status_is_refused(sms_sink: RunningProcess) -> None:
    response = httpx.post(f"{sms_sink.url}/_control/script", json={"statuses": [99]})
    assert response.status_code == 422


def test_the_newest_mail_to_an_address_gives_its_header(tmp_path: Path) -> None:
    box = Mailbox(tmp_path)
    links = LatestHeaders(tmp_path, "List-Unsubscribe")
    for to, link in (("a@example.org", "<https://x/1>"), ("b@example.org", "<https://x/2>")):
        box.store("n@ketenbus", [to], f"To: {to}\r\nList-Unsubscribe: {link}\r\n\r\nhi".encode())
    box.store("n@ketenbus", ["a@example.org"], b"To: a@example.org\r\n\r\nno link here")
    assert links.of("a@example.org") == "<https://x/1>"
    assert links.of("c@example.org") is None
    assert links.of("@example.org") is None  # exact
    # Mail that arrives after the first question is read at the next.
    box.store(
        "n@ketenbus",
        ["a@example.org"],
        b"To: a@example.org\r\nList-Unsubscribe: <https://x/3>\r\n\r\n",
    )
    assert links.of("a@example.org") == "<https://x/3>"
    assert LatestHeaders(tmp_path / "none", "List-Unsubscribe").of("a@example.org") is None
