"""Reminders and modules through real processes, on a clock that runs an hour a second.

Intake, trajectory, notifications and learning run as processes on their own Apache Kafka
and SecantusDB, all on one accelerated clock, started once for the tests of this module.
Referrals go in at intake's front door, appointments are planned and modules assigned with
trajectory's API, the client works in learning's portal API. Where trajectory's worker
actions are still being built (reschedule, cancel, feedback) and for intake's waiting list,
the test publishes their events exactly as they would: consumer-contract tests.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import Event, decode
from ketenbus.contracts.events import (
    REGISTRY,
    AppointmentCancelled,
    AppointmentRescheduled,
    ClientErasureRequested,
    ClientOptedOut,
    ClientWaitlisted,
    ConsentGranted,
    HomeworkFeedbackGiven,
    ModuleAbandoned,
    ModuleCompleted,
    QuestionnaireCompleted,
    QuestionnaireMoment,
)
from ketenbus.contracts.samples import contact_card_shared
from ketenbus.contracts.topics import DELIVERIES, ENROLMENTS
from ketenbus.contracts.values import (
    AppointmentKind,
    ConsentGiver,
    ConsentPurpose,
    Language,
    Modality,
    new_id,
)
from ketenbus.devstack.chain_client import ChainClient, eventually
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.stack import EmbeddedStack
from ketenbus.kit.clock import ScaledClock
from ketenbus.notifications.timing import spoken_moment

from . import contacts_topic
from .relay import publish

pytestmark = [pytest.mark.stack, pytest.mark.chain]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SPEED = 3600.0  # one real second is one simulated hour
GP = "huisarts-de-linde"
UTRECHT, AMERSFOORT = "welzijn-utrecht", "welzijn-amersfoort"
# Notifications' timing is checked to within this much simulated time: 1.5 real seconds, as
# a busy machine running the whole suite stalled a dispatch 0.7 s past 40 minutes
# (2026-12-03); the reminder 2 hours before an appointment still comes well before it.
SLACK = timedelta(minutes=90)
FEEDBACK_KEY = sealing.key_to_text(sealing.new_key())


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
        "consent": {
            "given_by": "client",
            "purposes": ["referral_feedback", "reminders"],
            "granted_at": "2026-03-01T09:10:00+01:00",
        },
    }


async def events_on(kafka: KafkaAccess, topic: str) -> list[Event]:
    """Every event on a topic so far (the stack is isolated: all of them are this test's)."""
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


@pytest.fixture(scope="module")
def accelerated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedStack, Any]]:
    """The four services on their own servers and one clock, for every test here."""
    home = tmp_path_factory.mktemp("accelerated")
    policies = home / "policies.json"
    policies.write_text(
        json.dumps(
            {
                "default": {
                    "contact_phone": "030 123 45 67",
                    "module_nudge_after": "PT6H",
                    "module_nudges_max": 2,
                },
                # Amersfoort reminds once, ten hours ahead: for a 09:00 appointment, 23:00.
                "organisations": {AMERSFOORT: {"appointment_reminders": ["PT10H"]}},
            }
        )
    )
    start = datetime(2026, 3, 2, 9, 0, tzinfo=AMSTERDAM)
    anchor = time.time()
    stack = EmbeddedStack(home / "stack", outlive_caller=False)
    stack.start_infrastructure(timeout=60)
    try:
        stack.start_services(
            ("intake", "trajectory", "notifications", "learning"),
            {
                "KETENBUS_CLOCK_START": start.isoformat(),
                "KETENBUS_CLOCK_ANCHOR": repr(anchor),
                "KETENBUS_CLOCK_SPEED": str(SPEED),
                "NOTIFICATION_POLICIES_FILE": str(policies),
                "DISPATCH_POLL_SECONDS": "0.05",
                "GAUGE_SECONDS": "0.5",
                # Overdue in the chain's time: 5 minutes would be a twelfth of a real second
                # here, less than a busy machine may take between two dispatches.
                "OVERDUE_AFTER": "PT2H",
                "FEEDBACK_SHARING_KEY": FEEDBACK_KEY,
                "ABANDON_AFTER": "PT20H",
                "ABANDON_CHECK_SECONDS": "0.1",
            },
        )
        stack.wait_ready(timeout=120)
        yield stack, ScaledClock(start, anchor, SPEED)
    finally:
        stack.stop()


async def test_reminders_arrive_on_time_move_with_the_appointment_and_respect_the_client(
    accelerated,
):
    stack, clock = accelerated
    kafka = stack.kafka
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
        # Fatima's and Kees's first reminders are due 16 and 21 simulated hours (real seconds)
        # from now: their appointments change before then, however slowly a busy machine
        # gets there.
        starts = {
            "sanne": now + timedelta(hours=26),
            "fatima": now + timedelta(hours=40),
            "kees": now + timedelta(hours=45),
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
            await publish(kafka, event, "trajectory", clock.now())

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

        reminders = await eventually(settled, "every reminder sent or cancelled", timeout=120)
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
    delivered_events = await events_on(kafka, DELIVERIES.name)
    opted_out = [e for e in delivered_events if isinstance(e, ClientOptedOut)]
    assert [(e.client_ref, e.channel.value, e.via.value) for e in opted_out] == [
        (ref["lotte"], "sms", "stop_reply")
    ]
    # No one else got anything: every message is accounted for.
    ours = {"sanne@", "fatima@", "kees@", "lotte@"}
    assert len([m for m in mails if m["To"].split("@")[0] + "@" in ours]) == 6
    assert len(texts) == 1


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


class Portal:
    """Learning's API as a client's portal uses it, with the portal token the client's worker
    issued (`client=`); the module catalogue with the organisation's portal key; homework and
    tokens as the social worker (`worker=True`)."""

    def __init__(self, stack: EmbeddedStack) -> None:
        self.http = httpx.AsyncClient(base_url=stack.service_url("learning"), timeout=10)
        self.catalogue = {"Authorization": f"Bearer {stack.api_token(UTRECHT, 'portal')}"}
        self.worker = {"Authorization": f"Bearer {stack.api_token(UTRECHT, 'worker')}"}
        self.tokens: dict[str, str] = {}

    async def issue(self, client_ref: str) -> httpx.Response:
        """The worker issues the client's portal token (learning must know the client)."""
        answer = await self.call("POST", f"/v1/clients/{client_ref}/portal-tokens", worker=True)
        if answer.status_code == 201:
            self.tokens[client_ref] = answer.json()["token"]
        return answer

    async def call(
        self, method: str, path: str, *, client: str | None = None, worker: bool = False, **kw: Any
    ) -> Any:
        headers = self.worker if worker else self.catalogue
        if client is not None:
            if client not in self.tokens:
                issued = await self.issue(client)
                assert issued.status_code == 201, issued.text
            headers = {"Authorization": f"Bearer {self.tokens[client]}"}
        return await self.http.request(method, path, headers=headers, **kw)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json()


SCORES = {
    "money": 3,
    "housing": 6,
    "health": 5,
    "social_contacts": 4,
    "daily_activities": 5,
    "wellbeing": 4,
}


async def test_a_module_worked_through_is_recorded_and_an_idle_one_is_nudged_then_abandoned(
    accelerated,
):
    stack, clock = accelerated
    kafka = stack.kafka
    client = ChainClient(stack.urls(), stack.api_token)
    portal = Portal(stack)
    try:
        anouk = await client.refer(
            GP,
            person("Anouk Smit", "3512 GH", email="anouk@example.org", phone=None, channel="email"),
        )
        yusuf = await client.refer(
            GP,
            person("Yusuf Bos", "3512 JK", email="yusuf@example.org", phone=None, channel="email"),
        )
        anouk_trajectory = await client.trajectory_for(UTRECHT, anouk["referral_id"])
        yusuf_trajectory = await client.trajectory_for(UTRECHT, yusuf["referral_id"])

        # Yusuf is given a module and never opens it.
        idle = await client.assign_module(
            UTRECHT, yusuf_trajectory["trajectory_id"], "omgaan-met-stress"
        )
        assigned_at = clock.now()

        # Anouk works through "Grip op je geld" in the portal.
        assigned = await client.assign_module(
            UTRECHT, anouk_trajectory["trajectory_id"], "grip-op-je-geld"
        )
        enrolment = await client.enrolment(
            UTRECHT, anouk_trajectory["client_ref"], assigned["enrolment_id"]
        )
        path = f"/v1/enrolments/{enrolment['enrolment_id']}"
        anouk_ref = anouk_trajectory["client_ref"]
        module = await portal.ok("GET", "/v1/modules/grip-op-je-geld", params={"language": "en"})
        assert module["title"] == "Getting a grip on your money"
        kinds = [step["kind"] for step in module["content"]]
        assert set(kinds) == {"text", "video", "exercise", "questionnaire", "homework"}
        assert (await portal.ok("POST", f"{path}/start", client=anouk_ref))["status"] == "started"
        submission = None
        for step in module["content"][:-1]:
            if step["kind"] == "questionnaire":
                assert set(step["questions"]) == set(SCORES)
                answered = await portal.ok(
                    "POST",
                    f"{path}/steps/{step['step_id']}/questionnaire",
                    json={"scores": SCORES},
                    client=anouk_ref,
                )
                assert answered["moment"] == "baseline"
            elif step["kind"] == "homework":
                submission = await portal.ok(
                    "POST",
                    f"{path}/steps/{step['step_id']}/homework",
                    json={"answer": "Boodschappen kosten meer dan ik dacht."},
                    client=anouk_ref,
                )
            else:
                await portal.ok(
                    "POST", f"{path}/steps/{step['step_id']}/complete", client=anouk_ref
                )
        assert submission is not None
        wrong = await portal.call("POST", f"{path}/steps/zelfscan/complete", client=anouk_ref)
        assert wrong.status_code == 409  # a questionnaire is answered, not ticked off

        # The worker reads the homework, and answers it in trajectory (sealed for learning).
        read = await portal.ok("GET", f"/v1/homework/{submission['submission_id']}", worker=True)
        assert read["answer"] == "Boodschappen kosten meer dan ik dacht."
        await publish(
            kafka,
            HomeworkFeedbackGiven(
                trajectory_id=anouk_trajectory["trajectory_id"],
                client_ref=anouk_trajectory["client_ref"],
                organisation_id=UTRECHT,
                enrolment_id=enrolment["enrolment_id"],
                submission_id=submission["submission_id"],
                step_id=submission["step_id"],
                feedback=sealing.seal(
                    b"Goed gezien! Zullen we dat samen bekijken?",
                    data_key=sealing.new_key(),
                    key_id=submission["submission_id"],
                    recipient_key=sealing.key_from_text(FEEDBACK_KEY),
                ),
                given_at=clock.now(),
            ),
            "trajectory",
            clock.now(),
        )

        async def feedback_shown() -> Any:
            progress = await portal.ok("GET", path, client=anouk_ref)
            return progress if progress["homework"][0]["feedback"] else None

        progress = await eventually(feedback_shown, "the worker's feedback in the portal")
        assert progress["homework"][0]["feedback"] == "Goed gezien! Zullen we dat samen bekijken?"
        assert progress["questionnaires"][0]["scores"] == SCORES

        last = module["content"][-1]["step_id"]
        finished = await portal.ok("POST", f"{path}/steps/{last}/complete", client=anouk_ref)
        assert finished["status"] == "completed"

        async def recorded() -> Any:
            current = await client.trajectory(UTRECHT, anouk_trajectory["trajectory_id"])
            return current if all(m["completed"] for m in current["modules"]) else None

        await eventually(recorded, "trajectory to record the completed module")

        # Yusuf's idle module: two friendly nudges, then it counts as abandoned.
        async def abandoned() -> Any:
            yusuf_ref = yusuf_trajectory["client_ref"]
            found = await portal.ok(
                "GET", "/v1/enrolments", params={"client_ref": yusuf_ref}, client=yusuf_ref
            )
            return found if found and found[0]["status"] == "abandoned" else None

        await eventually(abandoned, "the idle module to count as abandoned", timeout=40)

        # A client on the waiting list takes the self-scan of their own accord, after the
        # invitation notifications sent them.
        waiting_ref = new_id("cl")
        stranger_ref = new_id("cl")
        contact_key = sealing.key_from_text(
            stack.service_environment("notifications")["CONTACT_SHARING_KEY"]
        )
        await publish(
            kafka,
            ConsentGranted(
                consent_id=new_id("cns"),
                client_ref=waiting_ref,
                organisation_id=UTRECHT,
                given_by=ConsentGiver.CLIENT,
                partner_organisation_id=UTRECHT,
                purpose=ConsentPurpose.REMINDERS,
                granted_at=clock.now(),
            ),
            "intake",
            clock.now(),
        )
        await publish(
            kafka,
            contact_card_shared(
                waiting_ref,
                UTRECHT,
                contact_key,
                clock.now(),
                name="Ilse",
                email="ilse@example.org",
            ),
            "intake",
            clock.now(),
        )
        await publish(
            kafka,
            ClientWaitlisted(
                referral_id=new_id("ref"),
                client_ref=waiting_ref,
                organisation_id=UTRECHT,
                position=4,
                waitlisted_at=clock.now(),
            ),
            "intake",
            clock.now(),
        )

        async def invited() -> Any:
            return next((m for m in stack.mailbox() if m["To"] == "ilse@example.org"), None)

        invitation = await eventually(invited, "the invitation to the waiting client")
        assert invitation["Subject"] == "U staat op onze wachtlijst"
        assert "https://portaal.ketenbus.example/zelfhulp" in invitation.get_content()

        async def known_to_be_waiting() -> bool:
            return (await portal.issue(waiting_ref)).status_code == 201

        # The worker can give the waiting client a portal token once learning knows they wait.
        await eventually(known_to_be_waiting, "learning to know the client is waiting")
        scan = await portal.ok(
            "POST",
            "/v1/enrolments",
            json={"client_ref": waiting_ref, "module_id": "zelfscan-leefgebieden"},
            client=waiting_ref,
        )
        assert scan["self_enrolled"] is True and scan["status"] == "started"
        done = await portal.ok(
            "POST",
            f"/v1/enrolments/{scan['enrolment_id']}/steps/zelfscan/questionnaire",
            json={"scores": SCORES},
            client=waiting_ref,
        )
        assert done["moment"] == "baseline"
        # Someone learning does not know (not waiting, no module) gets no portal at all.
        assert (await portal.issue(stranger_ref)).status_code == 404

        # Anouk asks to be forgotten: learning keeps nothing of her.
        await publish(
            kafka,
            ClientErasureRequested(
                client_ref=anouk_trajectory["client_ref"],
                organisation_id=UTRECHT,
                requested_at=clock.now(),
            ),
            "intake",
            clock.now(),
        )

        async def forgotten() -> bool:
            # Her enrolments, key and portal token go in one transaction: her token stops
            # working when her enrolments are gone.
            found = await portal.call(
                "GET", "/v1/enrolments", params={"client_ref": anouk_ref}, client=anouk_ref
            )
            return found.status_code == 401

        await eventually(forgotten, "learning to forget Anouk")
        assert (await portal.issue(anouk_ref)).status_code == 404  # nothing left to open

        async def enrolments_published() -> list[Event] | None:
            # Learning's relay publishes after each commit: wait for the last ones to be out.
            events = await events_on(kafka, ENROLMENTS.name)
            seen = {(type(e).__name__, getattr(e, "client_ref", None)) for e in events}
            expected = {
                ("ModuleCompleted", anouk_trajectory["client_ref"]),
                ("ModuleAbandoned", yusuf_trajectory["client_ref"]),
                ("QuestionnaireCompleted", waiting_ref),
            }
            return events if expected <= seen else None

        enrolment_events = await eventually(enrolments_published, "learning's events on the bus")
        reminders = await Notifications(stack).reminders(UTRECHT, yusuf_trajectory["client_ref"])
    finally:
        await client.close()
        await portal.http.aclose()

    ours = [e for e in enrolment_events if e.enrolment_id == enrolment["enrolment_id"]]
    names = [type(e).__name__ for e in ours]
    assert names[0] == "ModuleStarted" and names[-1] == "ModuleCompleted"
    assert names.count("ModuleStepCompleted") == len(module["content"])
    assert names.count("HomeworkSubmitted") == 1 and names.count("QuestionnaireCompleted") == 1
    [completed] = [e for e in ours if isinstance(e, ModuleCompleted)]
    assert completed.steps_completed == completed.steps_total == len(module["content"])

    [gave_up] = [e for e in enrolment_events if isinstance(e, ModuleAbandoned)]
    assert gave_up.enrolment_id == idle["enrolment_id"] and gave_up.steps_completed == 0
    nudges = [r for r in reminders if r["purpose"] == "module_nudge"]
    assert [r["status"] for r in nudges] == ["sent", "sent"]
    for nudge, hours in zip(nudges, (6, 12), strict=True):
        assert at(nudge, "due_at") - assigned_at < timedelta(hours=hours, minutes=40)
        assert at(nudge, "sent_at") < gave_up.abandoned_at  # the nudges came first
    nudge_mails = [m for m in stack.mailbox() if m["To"] == "yusuf@example.org"]
    assert len(nudge_mails) == 2
    assert all(m["Subject"] == "Hoe gaat het met uw online programma?" for m in nudge_mails)
    assert idle["enrolment_id"] in nudge_mails[0].get_content()  # the link to carry on
    assert "stress" not in nudge_mails[0].get_content().lower()  # the module is not named

    [scan_done] = [
        e
        for e in enrolment_events
        if isinstance(e, QuestionnaireCompleted) and e.client_ref == waiting_ref
    ]
    assert scan_done.moment is QuestionnaireMoment.BASELINE
    assert scan_done.scores.model_dump() == SCORES


async def test_reminders_only_with_consent_and_withdrawal_stops_them_at_once(accelerated):
    """`reminders` is a consent purpose: without it no reminder, follow-up or invitation
    reaches the resident; its withdrawal cancels what waits and the contact card goes."""
    stack, clock = accelerated
    client = ChainClient(stack.urls(), stack.api_token)
    notifications = Notifications(stack)
    piet = person(
        "Piet Smit", "3512 GH", email="piet@example.org", phone="06-44444444", channel="sms"
    )
    piet["consent"]["purposes"] = ["referral_feedback"]  # no reminders
    mila = person("Mila de Boer", "3512 JK", email="mila@example.org", phone=None, channel="email")
    try:
        trajectories = {}
        for key, referral in (("piet", piet), ("mila", mila)):
            received = await client.refer(GP, referral)
            trajectories[key] = await client.trajectory_for(UTRECHT, received["referral_id"])
        piet_ref, mila_ref = (trajectories[k]["client_ref"] for k in ("piet", "mila"))
        await eventually(
            lambda: notifications.preferences(UTRECHT, mila_ref), "Mila's contact card"
        )

        now = clock.now().replace(second=0, microsecond=0)
        # Piet: an appointment with two reminders ahead, and one he will miss (a follow-up).
        await client.schedule(
            UTRECHT,
            trajectories["piet"]["trajectory_id"],
            now + timedelta(hours=26),
            kind="follow_up",
            modality="face_to_face",
        )
        missed = await client.schedule(
            UTRECHT,
            trajectories["piet"]["trajectory_id"],
            now + timedelta(hours=1),
            kind="follow_up",
            modality="face_to_face",
        )
        mila_at = now + timedelta(hours=26)
        await client.schedule(
            UTRECHT,
            trajectories["mila"]["trajectory_id"],
            mila_at,
            kind="follow_up",
            modality="face_to_face",
        )

        async def registered_missed() -> Any:
            try:
                return await client.register(
                    UTRECHT,
                    trajectories["piet"]["trajectory_id"],
                    missed["appointment_id"],
                    "missed",
                )
            except Exception:  # the appointment has not begun yet on the chain's clock
                return None

        await eventually(registered_missed, "Piet's missed appointment registered")

        # Mila consented: her first reminder (24 h ahead) arrives.
        def mails_to(address: str) -> list[Any]:
            return [m for m in stack.mailbox() if m["To"] == address]

        async def first_to_mila() -> Any:
            return mails_to("mila@example.org") or None

        await eventually(first_to_mila, "Mila's first reminder", timeout=30)
        consents = await client._call(
            "GET", "intake", f"/v1/clients/{mila_ref}/consents", UTRECHT, "worker"
        )
        [reminders_consent] = [c for c in consents if c["purpose"] == "reminders"]
        await client._call(
            "POST",
            "intake",
            f"/v1/clients/{mila_ref}/consents/{reminders_consent['consent_id']}/withdrawal",
            UTRECHT,
            "worker",
        )

        # The withdrawal itself cancels what waits, well before its time (2 h ahead).
        async def withdrawn() -> Any:
            found = await notifications.reminders(UTRECHT, mila_ref)
            waiting = [r for r in found if r["status"] in ("scheduled", "sending")]
            return None if waiting else found

        mila_reminders = await eventually(withdrawn, "Mila's reminders cancelled", timeout=20)
        assert clock.now() < mila_at - timedelta(hours=2)
        assert sorted(r["status"] for r in mila_reminders) == ["cancelled", "sent"]
        [cancelled] = [r for r in mila_reminders if r["status"] == "cancelled"]
        assert cancelled["closed_reason"] == "the client withdrew consent to reminders"
        assert await notifications.preferences(UTRECHT, mila_ref) is None  # card deleted

        # Piet: every message planned for him closes unsent, for want of consent.
        async def piet_settled() -> Any:
            found = await notifications.reminders(UTRECHT, piet_ref)
            purposes = {r["purpose"] for r in found}
            if "missed_appointment_follow_up" not in purposes:
                return None
            if any(r["status"] in ("scheduled", "sending") for r in found):
                return None
            return found

        piet_reminders = await eventually(piet_settled, "Piet's reminders closed", timeout=30)
        assert {r["status"] for r in piet_reminders} == {"cancelled"}
        assert {r["closed_reason"] for r in piet_reminders} == {
            "the client has not consented to reminders"
        }
        assert len(piet_reminders) >= 3  # 24 h, 2 h and the follow-up
        assert await notifications.preferences(UTRECHT, piet_ref) is None  # no card kept

        # Until Mila's appointment: still only the one mail from before the withdrawal.
        async def appointment_begun() -> bool | None:
            return clock.now() > mila_at or None

        await eventually(appointment_begun, "Mila's appointment time", timeout=40)
        # And taken back from the bus: the withdrawal's tombstone on the compacted contacts
        # topic removes Mila's sealed card from it once compaction ran.
        left = await contacts_topic.card_compacted_away(stack.kafka, mila_ref)
        assert [r.value for r in left] == [None]  # the tombstone alone, for a while
    finally:
        await client.close()
        await notifications.http.aclose()
    assert len(mails_to("mila@example.org")) == 1
    assert mails_to("piet@example.org") == []
    assert [t for t in stack.sms_messages() if t["body"]["to"] == "+31644444444"] == []
