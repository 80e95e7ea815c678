"""Reminders through real processes on a clock that runs an hour a second.

Intake, trajectory and notifications run as processes on their own Tansu and SecantusDB.
Referrals go in at intake's front door, appointments are planned with trajectory's API, and
where trajectory's worker actions are still being built (reschedule, cancel) the test
publishes trajectory's events exactly as trajectory would: a consumer-contract test of
notifications.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ketenbus.contracts.envelope import Event, decode, wrap
from ketenbus.contracts.events import (
    REGISTRY,
    AppointmentCancelled,
    AppointmentRescheduled,
    ClientOptedOut,
)
from ketenbus.contracts.topics import DELIVERIES
from ketenbus.contracts.values import AppointmentKind, Language, Modality
from ketenbus.devstack.chain_client import ChainClient, eventually
from ketenbus.kit.clock import ScaledClock
from ketenbus.kit.outbox import headers_of
from ketenbus.notifications.timing import spoken_moment

pytestmark = [pytest.mark.stack, pytest.mark.chain]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SPEED = 3600.0  # one real second is one simulated hour
GP = "huisarts-de-linde"
UTRECHT, AMERSFOORT = "welzijn-utrecht", "welzijn-amersfoort"
# Notifications' timing is checked to within this much simulated time.
SLACK = timedelta(minutes=40)


def person(name: str, postcode: str, *, email: str | None, phone: str | None, channel: str):
    client = {
        "name": name,
        "date_of_birth": "1985-06-01",
        "postcode": postcode,
        "language": "nl",
        "preferred_channel": channel,
    }
    if email:
        client["email"] = email
    if phone:
        client["phone"] = phone
    return {
        "referrer_type": "gp",
        "referrer_reference": f"HDL-{uuid.uuid4().hex[:10]}",
        "topic": "psychosocial",
        "urgency": {"threatened_eviction": False, "disconnection": False},
        "client": client,
        "consent": {"given_by": "client", "granted_at": "2026-03-01T09:10:00+01:00"},
    }


async def publish(bootstrap: str, event: Event, source: str, now: datetime) -> None:
    """Put an event on its topic exactly as its owner's outbox relay would."""
    envelope = wrap(event, source=source, time=now)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(
            event.destination().name,
            envelope.to_bytes(),
            key=envelope.subject.encode(),
            headers=[(k, v.encode()) for k, v in headers_of(envelope).items()],
        )
    finally:
        await producer.stop()


async def events_on(bootstrap: str, topic: str) -> list[Event]:
    """Every event on a topic so far (the stack is isolated: all of them are this test's)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
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


class Notifications:
    """Notifications' API as the welfare organisation's own systems use it."""

    def __init__(self, stack: Any) -> None:
        self.url = stack.service_url("notifications")
        self.tokens = {org: stack.api_token(org, "notifications") for org in (UTRECHT, AMERSFOORT)}
        self.http = httpx.AsyncClient(timeout=10)

    def _auth(self, org: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[org]}"}

    async def reminders(self, org: str, client_ref: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"{self.url}/v1/reminders", params={"client_ref": client_ref}, headers=self._auth(org)
        )
        response.raise_for_status()
        return response.json()

    async def preferences(self, org: str, client_ref: str) -> dict[str, Any] | None:
        response = await self.http.get(
            f"{self.url}/v1/clients/{client_ref}/preferences", headers=self._auth(org)
        )
        return response.json() if response.status_code == 200 else None

    async def stop_reply(self, org: str, phone: str) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.url}/v1/inbound-sms",
            json={"from": phone, "body": " Stop "},
            headers=self._auth(org),
        )
        response.raise_for_status()
        return response.json()

    async def metrics(self) -> str:
        return (await self.http.get(f"{self.url}/metrics")).text


def at(reminder: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(reminder[key])


def local(moment: datetime) -> str:
    return moment.astimezone(AMSTERDAM).strftime("%H:%M")


async def test_reminders_arrive_on_time_move_with_the_appointment_and_respect_the_client(
    chain, tmp_path
):
    policies = tmp_path / "policies.json"
    # Amersfoort reminds once, ten hours ahead: for a 09:00 appointment that is 23:00.
    policies.write_text(
        json.dumps(
            {
                "default": {"contact_phone": "030 123 45 67"},
                "organisations": {AMERSFOORT: {"appointment_reminders": ["PT10H"]}},
            }
        )
    )
    start = datetime(2026, 3, 2, 9, 0, tzinfo=AMSTERDAM)
    anchor = time.time()
    clock = ScaledClock(start, anchor, SPEED)
    stack = chain(
        ("intake", "trajectory", "notifications"),
        isolated=True,
        timeout=120,
        extra_env={
            "KETENBUS_CLOCK_START": start.isoformat(),
            "KETENBUS_CLOCK_ANCHOR": repr(anchor),
            "KETENBUS_CLOCK_SPEED": str(SPEED),
            "NOTIFICATION_POLICIES_FILE": str(policies),
            "DISPATCH_POLL_SECONDS": "0.05",
            "GAUGE_SECONDS": "0.5",
        },
    )
    bootstrap = stack.kafka_bootstrap
    client = ChainClient(stack.urls(), stack.api_token)
    notifications = Notifications(stack)
    try:
        people = {
            "sanne": person(
                "Sanne de Vries", "3512 JE", email="sanne@example.org", phone=None, channel="email"
            ),
            "daan": person(
                "Daan Jansen", "3811 AB", email=None, phone="06-11111111", channel="sms"
            ),
            "fatima": person(
                "Fatima El Amrani",
                "3512 AB",
                email="fatima@example.org",
                phone=None,
                channel="email",
            ),
            "kees": person(
                "Kees Bakker", "3512 CD", email="kees@example.org", phone=None, channel="email"
            ),
            "lotte": person(
                "Lotte Visser",
                "3512 EF",
                email="lotte@example.org",
                phone="06-22222222",
                channel="sms",
            ),
        }
        trajectories: dict[str, dict[str, Any]] = {}
        for key, referral in people.items():
            received = await client.refer(GP, referral)
            org = AMERSFOORT if key == "daan" else UTRECHT
            trajectories[key] = await client.trajectory_for(org, received["referral_id"])
        ref = {key: t["client_ref"] for key, t in trajectories.items()}

        async def contact_known(key: str, org: str = UTRECHT) -> Any:
            return await notifications.preferences(org, ref[key])

        # Lotte answers STOP to an earlier text: from now on no SMS, but e-mail still comes.
        await eventually(lambda: contact_known("lotte"), "Lotte's contact details")
        assert await notifications.stop_reply(UTRECHT, "+31622222222") == {"opted_out": 1}

        now = clock.now().replace(second=0, microsecond=0)
        appointments: dict[str, dict[str, Any]] = {}
        starts = {
            "sanne": now + timedelta(hours=26),
            "fatima": now + timedelta(hours=28),
            "kees": now + timedelta(hours=27),
            "lotte": now + timedelta(hours=26),
        }
        # Daan's appointment: 09:00 on the first morning whose evening before is still ahead.
        evening = (now + timedelta(hours=2)).astimezone(AMSTERDAM)
        evening = evening.replace(hour=23, minute=0) + timedelta(days=0 if evening.hour < 23 else 1)
        starts["daan"] = evening + timedelta(hours=10)
        for key, starts_at in starts.items():
            org = AMERSFOORT if key == "daan" else UTRECHT
            appointments[key] = await client.schedule(
                org,
                trajectories[key]["trajectory_id"],
                starts_at,
                kind="follow_up",
                modality="face_to_face",
            )

        async def planned(key: str, count: int, org: str = UTRECHT) -> Any:
            found = await notifications.reminders(org, ref[key])
            return found if len(found) >= count else None

        # Fatima's appointment moves three hours later; Kees's is called off.
        await eventually(lambda: planned("fatima", 2), "Fatima's reminders")
        await eventually(lambda: planned("kees", 2), "Kees's reminders")
        moved_to = starts["fatima"] + timedelta(hours=3)
        for _key, event in (
            (
                "fatima",
                AppointmentRescheduled(
                    trajectory_id=trajectories["fatima"]["trajectory_id"],
                    client_ref=ref["fatima"],
                    organisation_id=UTRECHT,
                    appointment_id=appointments["fatima"]["appointment_id"],
                    kind=AppointmentKind.FOLLOW_UP,
                    starts_at=moved_to,
                    previous_starts_at=starts["fatima"],
                    modality=Modality.VIDEO,
                    rescheduled_at=clock.now(),
                ),
            ),
            (
                "kees",
                AppointmentCancelled(
                    trajectory_id=trajectories["kees"]["trajectory_id"],
                    client_ref=ref["kees"],
                    organisation_id=UTRECHT,
                    appointment_id=appointments["kees"]["appointment_id"],
                    kind=AppointmentKind.FOLLOW_UP,
                    starts_at=starts["kees"],
                    cancelled_at=clock.now(),
                ),
            ),
        ):
            await publish(bootstrap, event, "trajectory", clock.now())

        metrics = await eventually(
            _gauges_show_pending(notifications), "the reminder gauges", timeout=20
        )
        assert 'ketenbus_reminders_overdue{organisation="welzijn-utrecht"} 0.0' in metrics

        # Everything is settled once no reminder of these clients waits any more.
        async def settled() -> Any:
            everything = {}
            for key in people:
                org = AMERSFOORT if key == "daan" else UTRECHT
                everything[key] = await notifications.reminders(org, ref[key])
                if any(r["status"] in ("scheduled", "sending") for r in everything[key]):
                    return None
            return everything

        reminders = await eventually(settled, "every reminder sent or cancelled", timeout=90)
    finally:
        await client.close()
        await notifications.http.aclose()

    mails = stack.mailbox()
    texts = stack.sms_messages()

    def mails_to(address: str) -> list[Any]:
        return [m for m in mails if m["To"] == address]

    # Sanne: 24 h and 2 h before, by e-mail, each at its moment, saying when.
    sanne = reminders["sanne"]
    assert [r["status"] for r in sanne] == ["sent", "sent"]
    for reminder, hours in zip(sanne, (24, 2), strict=True):
        due = starts["sanne"] - timedelta(hours=hours)
        assert at(reminder, "due_at") == due
        assert due <= at(reminder, "sent_at") <= due + SLACK, (hours, reminder)
    sanne_mails = mails_to("sanne@example.org")
    assert len(sanne_mails) == 2
    spoken = starts["sanne"].astimezone(AMSTERDAM)
    for mail in sanne_mails:
        body = mail.get_content()
        assert body.startswith("Beste Sanne,")
        assert f"om {spoken:%H:%M} uur" in body
        assert "een gesprek bij ons" in body
        assert mail["Subject"].startswith("Herinnering: uw afspraak op ")

    # Fatima: both reminders moved with the appointment and speak of the new time.
    fatima = [r for r in reminders["fatima"] if r["status"] == "sent"]
    assert sorted(at(r, "due_at") for r in fatima) == [
        moved_to - timedelta(hours=24),
        moved_to - timedelta(hours=2),
    ]
    for reminder in fatima:
        assert at(reminder, "sent_at") >= at(reminder, "due_at")
    fatima_mails = mails_to("fatima@example.org")
    assert len(fatima_mails) == 2
    for mail in fatima_mails:
        assert f"een videogesprek op {_spoken(moved_to)}" in mail.get_content()

    # Kees: cancelled appointment, no reminder at all.
    assert [r["status"] for r in reminders["kees"]] == ["cancelled", "cancelled"]
    assert {r["closed_reason"] for r in reminders["kees"]} == {"the appointment was cancelled"}
    assert mails_to("kees@example.org") == []

    # Daan: the SMS due at 23:00 waited for the end of the quiet hours, 08:00.
    [daan] = reminders["daan"]
    assert local(at(daan, "due_at")) == "23:00"
    sent_at = at(daan, "sent_at").astimezone(AMSTERDAM)
    assert sent_at.date() == (at(daan, "due_at") + timedelta(hours=2)).astimezone(AMSTERDAM).date()
    assert "08:00" <= local(sent_at) <= "08:40", sent_at
    [daan_sms] = [t for t in texts if t["body"]["to"] == "+31611111111"]
    assert daan_sms["body"]["body"].startswith("Hallo Daan, herinnering: afspraak op ")
    assert "09:00" in daan_sms["body"]["body"] and "STOP" in daan_sms["body"]["body"]

    # Lotte stopped SMS: her reminders came by e-mail, and no text reached her.
    assert [r["channel"] for r in reminders["lotte"]] == ["email", "email"]
    assert len(mails_to("lotte@example.org")) == 2
    assert [t for t in texts if t["body"]["to"] == "+31622222222"] == []
    delivered_events = await events_on(bootstrap, DELIVERIES.name)
    opted_out = [e for e in delivered_events if isinstance(e, ClientOptedOut)]
    assert [(e.client_ref, e.channel.value, e.via.value) for e in opted_out] == [
        (ref["lotte"], "sms", "stop_reply")
    ]
    # No one else got anything: every message is accounted for.
    assert len(mails) == 6 and len(texts) == 1


def _spoken(moment: datetime) -> str:
    return spoken_moment(moment, AMSTERDAM, Language.NL)


def _gauges_show_pending(notifications: Notifications):
    async def probe() -> str | None:
        text = await notifications.metrics()
        line = next(
            (
                row
                for row in text.splitlines()
                if row.startswith('ketenbus_reminders_due{organisation="welzijn-utrecht"}')
            ),
            None,
        )
        return text if line and float(line.split()[-1]) >= 4 else None

    return probe
