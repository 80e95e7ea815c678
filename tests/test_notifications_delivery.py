"""Delivery through a real notifications process: retries, refusals, a SIGKILL between
sending and recording, the missed-appointment follow-up with its note to the worker, opt-out
by link, and erasure.

Only notifications runs; the test publishes intake's and trajectory's events exactly as they
would (contact details sealed with the stack's key), so this is a consumer-contract test.
The clock starts at 10:00 on a weekday and runs at normal speed: no quiet hours interfere.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import Event, decode
from ketenbus.contracts.events import (
    REGISTRY,
    AppointmentMissed,
    ClientErasureRequested,
    ClientOptedOut,
    ClientWaitlisted,
    ConsentGranted,
    ReminderFailed,
    ReminderSent,
    WorkerNote,
    WorkerNotified,
)
from ketenbus.contracts.samples import contact_card_shared
from ketenbus.contracts.topics import DELIVERIES
from ketenbus.contracts.values import (
    AppointmentKind,
    Channel,
    ConsentGiver,
    ConsentPurpose,
    new_id,
)
from ketenbus.devstack import chain_client
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.sms_sink import read_sms_attempts, script_statuses
from ketenbus.kit.clock import ScaledClock

from .relay import publish

pytestmark = [pytest.mark.stack, pytest.mark.chain]

ORG = "welzijn-utrecht"
TEAM = "team@welzijn-utrecht.example"


async def events_on(kafka: KafkaAccess, topic: str) -> list[Event]:
    consumer = AIOKafkaConsumer(
        topic, **kafka.client_options(), auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    events: list[Event] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                return events
            for records in batch.values():
                events += [decode(r.value, REGISTRY).data for r in records]
    finally:
        await consumer.stop()


def consented(client_ref: str, now: datetime) -> ConsentGranted:
    """The client's consent to reminders, as intake announces it before the card."""
    return ConsentGranted(
        consent_id=new_id("cns"),
        client_ref=client_ref,
        organisation_id=ORG,
        given_by=ConsentGiver.CLIENT,
        partner_organisation_id=ORG,
        purpose=ConsentPurpose.REMINDERS,
        granted_at=now,
    )


def waitlisted(client_ref: str, now: datetime) -> ClientWaitlisted:
    return ClientWaitlisted(
        referral_id=new_id("ref"),
        client_ref=client_ref,
        organisation_id=ORG,
        position=3,
        waitlisted_at=now,
    )


async def test_retries_refusals_a_crash_mid_send_and_the_follow_up_after_a_missed_appointment(
    chain, tmp_path
):
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps({"default": {"worker_mailbox": TEAM}}))
    start = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    anchor = time.time()
    clock = ScaledClock(start, anchor, 1.0)
    env = {
        "KETENBUS_CLOCK_START": start.isoformat(),
        "KETENBUS_CLOCK_ANCHOR": repr(anchor),
        "KETENBUS_CLOCK_SPEED": "1",
        "NOTIFICATION_POLICIES_FILE": str(policies),
        "DISPATCH_POLL_SECONDS": "0.1",
        "SEND_RETRY_BASE_SECONDS": "0.3",
        "SEND_CLAIM_SECONDS": "3",
        "SMS_TIMEOUT_SECONDS": "5",
        "MISSED_FOLLOW_UP_DELAY": "PT1S",
    }
    stack = chain(("notifications",), isolated=True, timeout=90, extra_env=env)
    kafka = stack.kafka
    key = sealing.key_from_text(stack.service_environment("notifications")["CONTACT_SHARING_KEY"])
    token = stack.api_token(ORG, "notifications")
    http = httpx.AsyncClient(
        base_url=stack.service_url("notifications"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    async def reminders_of(client_ref: str) -> list[dict[str, Any]]:
        response = await http.get("/v1/reminders", params={"client_ref": client_ref})
        response.raise_for_status()
        return response.json()

    async def settled(client_ref: str, status: str) -> dict[str, Any] | None:
        try:
            found = [r for r in await reminders_of(client_ref) if r["audience"] == "client"]
        except httpx.TransportError:
            return None  # restarting
        return found[0] if found and found[0]["status"] == status else None

    async def known(client_ref: str) -> bool:
        response = await http.get(f"/v1/clients/{client_ref}/preferences")
        return response.status_code == 200

    def attempts_for(reminder_id: str) -> list[dict[str, Any]]:
        return [
            a
            for a in read_sms_attempts(stack.sms_dir)
            if a.get("idempotency_key") == reminder_id
            or (isinstance(a["body"], dict) and a["body"].get("reference") == reminder_id)
        ]

    clients = {name: new_id("cl") for name in ("flaky", "refused", "crash", "missed")}
    phones = {"flaky": "06-33333331", "refused": "06-33333332", "crash": "06-33333333"}
    try:
        for name, client_ref in clients.items():
            phone = phones.get(name)
            email = "noor@example.org" if name == "missed" else None
            # Intake shares a card only under a `reminders` consent, announced first.
            await publish(kafka, consented(client_ref, clock.now()), "intake", clock.now())
            await publish(
                kafka,
                contact_card_shared(client_ref, ORG, key, clock.now(), phone=phone, email=email),
                "intake",
                clock.now(),
            )
        for client_ref in clients.values():
            await chain_client.eventually(lambda c=client_ref: known(c), "the contact details")

        # 1. The provider answers 500, then 200: one SMS, after a retry.
        script_statuses(stack.sms_url, [500, 200])
        await publish(kafka, waitlisted(clients["flaky"], clock.now()), "intake", clock.now())
        flaky = await chain_client.eventually(
            lambda: settled(clients["flaky"], "sent"), "the retried SMS"
        )
        assert flaky["attempts"] == 2 and flaky["channel"] == "sms"
        assert [a["status"] for a in attempts_for(flaky["reminder_id"])] == [500, 200]

        # 2. The provider answers 400: no retry, ReminderFailed, and the worker is told.
        script_statuses(stack.sms_url, [400])
        await publish(kafka, waitlisted(clients["refused"], clock.now()), "intake", clock.now())
        refused = await chain_client.eventually(
            lambda: settled(clients["refused"], "failed"), "the refused SMS to fail"
        )
        assert refused["closed_reason"] == "the SMS provider refused the message (HTTP 400)"
        assert [a["status"] for a in attempts_for(refused["reminder_id"])] == [400]

        # 3. A missed appointment: a calm mail to the client, a note for the worker.
        await publish(
            kafka,
            AppointmentMissed(
                trajectory_id=new_id("trj"),
                client_ref=clients["missed"],
                organisation_id=ORG,
                appointment_id=new_id("apt"),
                kind=AppointmentKind.INTAKE,
                starts_at=clock.now(),
                worker_id="mw.utrecht",
                registered_at=clock.now(),
            ),
            "trajectory",
            clock.now(),
        )
        await chain_client.eventually(
            lambda: settled(clients["missed"], "sent"), "the follow-up mail"
        )

        async def team_mails() -> Any:
            found = [m for m in stack.mailbox() if m["To"] == TEAM]
            return found if len(found) >= 2 else None

        notes = await chain_client.eventually(team_mails, "two notes in the team mailbox")
        [to_client] = [m for m in stack.mailbox() if m["To"] == "noor@example.org"]
        assert to_client["Subject"] == "We hebben u gemist"
        assert to_client.get_content().startswith("Beste Noor,")

        # 4. The opt-out link in that mail, as a mail program's one-click unsubscribe.
        link = to_client["List-Unsubscribe"].strip("<>")
        page = await http.get(link)
        assert page.status_code == 200 and "Geen e-mail meer" in page.text
        assert not (await http.get(f"/v1/clients/{clients['missed']}/preferences")).json()[
            "opted_out"
        ]  # looking at the page changed nothing
        done = await http.post(link, content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200 and "Gelukt" in done.text
        preferences = (await http.get(f"/v1/clients/{clients['missed']}/preferences")).json()
        assert preferences["opted_out"] == ["email"]
        forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
        assert (await http.post(forged)).status_code == 404

        # 5. Erasure: the contact details are gone.
        await publish(
            kafka,
            ClientErasureRequested(
                client_ref=clients["missed"], organisation_id=ORG, requested_at=clock.now()
            ),
            "intake",
            clock.now(),
        )

        async def forgotten() -> bool:
            response = await http.get(f"/v1/clients/{clients['missed']}/preferences")
            return response.status_code == 404

        await chain_client.eventually(forgotten, "the contact details to be forgotten")
        # 6. SIGKILL after the provider took the SMS and before notifications recorded it:
        #    the provider holds its answer back, and the process dies waiting for it.
        script_statuses(stack.sms_url, [200], hold_seconds=[8])
        await publish(kafka, waitlisted(clients["crash"], clock.now()), "intake", clock.now())

        async def delivered_to_crash() -> Any:
            found = [m for m in stack.sms_messages() if m["body"]["to"] == "+31633333333"]
            return found or None

        await chain_client.eventually(delivered_to_crash, "the SMS at the provider", timeout=20)
        stack.kill_service("notifications")
        killed_log = stack.log_path("notifications").read_text(encoding="utf-8")
        stack.start_service("notifications", env)
        # Settling needs no consumer group: no need to wait for the group to drop the dead
        # member (a session timeout) before the new process may act.
        crash = await chain_client.eventually(
            lambda: settled(clients["crash"], "sent"), "the crashed send to be settled", 60
        )
        assert crash["confirmed"] is True  # found at the provider, not guessed
        assert crash["reminder_id"] not in _recorded(killed_log)  # it died before recording
        assert len(await delivered_to_crash()) == 1
        assert [a["status"] for a in attempts_for(crash["reminder_id"])] == [200]

        async def crash_sent_on_the_bus() -> list[Event] | None:
            # Recorded with its event in one transaction, but published by the relay: the new
            # process relays only once the killed one's lease has run out.
            events = await events_on(kafka, DELIVERIES.name)
            sent = [e for e in events if isinstance(e, ReminderSent)]
            return events if any(e.client_ref == clients["crash"] for e in sent) else None

        events = await chain_client.eventually(
            crash_sent_on_the_bus, "the crashed send's ReminderSent on the bus", 30
        )
    finally:
        await http.aclose()

    sent = [e for e in events if isinstance(e, ReminderSent)]
    assert sorted(e.reminder_id for e in sent if e.client_ref == clients["crash"]) == [
        crash["reminder_id"]
    ]  # once, though the process died in the middle
    [failed] = [e for e in events if isinstance(e, ReminderFailed)]
    assert failed.reminder_id == refused["reminder_id"] and failed.channel is Channel.SMS
    notes_on_bus = {(e.note, e.client_ref) for e in events if isinstance(e, WorkerNotified)}
    assert notes_on_bus == {
        (WorkerNote.REMINDER_FAILED, clients["refused"]),
        (WorkerNote.CLIENT_MISSED_APPOINTMENT, clients["missed"]),
    }
    subjects = sorted(m["Subject"] for m in notes)
    assert subjects == [
        f"Afspraak gemist: cliënt {clients['missed']}",
        f"Bericht niet bezorgd: cliënt {clients['refused']}",
    ]
    [opted_out] = [e for e in events if isinstance(e, ClientOptedOut)]
    assert (opted_out.channel, opted_out.via.value) == (Channel.EMAIL, "link")
    log = stack.log_path("notifications").read_text(encoding="utf-8")
    for personal in ("Noor", "noor@example.org", "0633333", "+31633333"):
        assert personal not in log


def _recorded(log: str) -> set[str]:
    """Reminder ids the process recorded an outcome for, according to its log."""
    return {
        match
        for line in log.splitlines()
        if "reminder delivery attempted" in line
        for match in re.findall(r"rem_[0-9a-f]{32}", line)
    }
