"""The closed-loop referral chain through real processes: a GP refers, the welfare
organisation helps, debt counselling takes the debts in parallel, the GP sees the loop close.

intake, trajectory and learning run as their own processes on their own Tansu and
SecantusDB; the GP practice and the debt-counselling partner are the simulators in
ketenbus.devstack.partners, which know nothing but the contracts, Kafka and HTTP.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from ketenbus.contracts.events import PartnerOutcome, PartnerStatus, ReferralStatusChanged
from ketenbus.devstack import partner_keys
from ketenbus.devstack.chain_client import ChainClient, eventually
from ketenbus.devstack.partners import DebtCounsellingPartner, GpPractice

pytestmark = [pytest.mark.stack, pytest.mark.chain]

GP = "huisarts-de-linde"
DEBT = "schuldhulp-midden"
WELFARE = "welzijn-utrecht"
MODULE = "grip-op-je-geld"

RESIDENT = {
    "name": "Femke Jansen-Bakker",
    "date_of_birth": "1979-11-23",
    "postcode": "3522 BK",
    "phone": "06-48213975",
    "email": "femke.jansen@example.org",
    "language": "nl",
    "preferred_channel": "email",
}
# Every way the person could show up on a topic: name, surname, phone in both spellings, mail.
PERSONAL = [b"Femke", b"Jansen-Bakker", b"06-48213975", b"0648213975", b"femke.jansen"]
CLOSED_LOOP_FIELDS = {
    "referral_id",
    "referrer_organisation_id",
    "referrer_reference",
    "status",
    "reason",
    "redirect",
    "changed_at",
}


async def dump_every_topic(bootstrap: str) -> dict[str, list[bytes]]:
    """Every message on every topic of the broker, from the beginning to the end as it is now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        topics = sorted(await consumer.topics())
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        dump: dict[str, list[bytes]] = {topic: [] for topic in topics}
        deadline = time.monotonic() + 30
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            assert time.monotonic() < deadline, "could not read every topic to its end"
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                dump[tp.topic].extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return dump


async def test_a_gp_referral_closes_the_loop_with_a_debt_hand_off_in_parallel(chain):
    stack = chain(
        ("intake", "trajectory", "learning"), isolated=True, partners=[GP, DEBT], timeout=120
    )
    bootstrap = stack.kafka_bootstrap
    worker = {"Authorization": f"Bearer {stack.api_token(WELFARE, 'worker')}"}
    intake_url, trajectory_url = stack.service_url("intake"), stack.service_url("trajectory")
    gp = GpPractice(
        GP,
        bootstrap,
        intake_url=intake_url,
        api_key=stack.api_token(GP, "referrer"),
        sharing_key=partner_keys.key(stack.home, GP),
    )
    debt = DebtCounsellingPartner(DEBT, bootstrap, sharing_key=partner_keys.key(stack.home, DEBT))
    client = ChainClient(stack.urls(), stack.api_token)
    http = httpx.AsyncClient(timeout=10.0, headers=worker)
    await gp.start()
    await debt.start()
    try:
        # 1. The GP refers, with the resident's consent; the answer is the status, no more.
        answer = await gp.refer(
            {
                "referrer_type": "gp",
                "referrer_reference": "HDL-2026-0917",
                "topic": "debts_material",
                "client": RESIDENT,
                "consent": {"given_by": "client", "granted_at": "2026-03-02T09:10:00+01:00"},
            },
            idempotency_key=f"HDL-{uuid.uuid4().hex}",
        )
        assert answer.status_code == 201, answer.text
        referral = answer.json()
        assert referral["status"] == "accepted"
        referral_id = referral["referral_id"]

        # 2. The trajectory opens; three appointments, the first one missed.
        trajectory = await client.trajectory_for(WELFARE, referral_id)
        trajectory_id = trajectory["trajectory_id"]
        base = f"{trajectory_url}/v1/trajectories/{trajectory_id}"
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        appointments = []
        for n, (kind, modality) in enumerate(
            [("intake", "face_to_face"), ("intake", "video"), ("follow_up", "phone")]
        ):
            made = await http.post(
                f"{base}/appointments",
                json={
                    "kind": kind,
                    "modality": modality,
                    "starts_at": (start + timedelta(days=7 * n)).isoformat(),
                    "goal": "Overzicht maken van post en rekeningen",
                },
            )
            assert made.status_code == 201, made.text
            appointments.append(made.json()["appointment_id"])
        moved = await http.post(
            f"{base}/appointments/{appointments[1]}/reschedule",
            json={"starts_at": (start + timedelta(days=8)).isoformat()},
        )
        assert moved.status_code == 200, moved.text
        for appointment, outcome in zip(
            appointments, ("missed", "attended", "attended"), strict=True
        ):
            registered = await http.post(f"{base}/appointments/{appointment}/{outcome}")
            assert registered.status_code == 200, registered.text
        contact = await http.post(
            f"{base}/contacts",
            json={
                "channel": "dossier_message",
                "minutes": 10,
                "default_duration": True,
                "online_dossier": True,
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )
        assert contact.status_code == 201, contact.text
        guidance = {"phase": "guidance", "debt_journey_phase": 3}
        phase = await http.post(f"{base}/phase", json=guidance)
        assert phase.status_code == 200, phase.text

        # 3. A self-help module as homework, completed in the client portal.
        assigned = await client.assign_module(WELFARE, trajectory_id, MODULE)
        await client.enrolment(WELFARE, trajectory["client_ref"], assigned["enrolment_id"])
        completed = await client.complete_module(WELFARE, assigned["enrolment_id"])
        assert completed["status"] == "completed"

        async def module_recorded() -> Any:
            current = (await http.get(base)).json()
            return current if all(m["completed"] for m in current["modules"]) else None

        await eventually(module_recorded, "the completed module in the trajectory")

        # 4. The resident consents to debt counselling; the worker hands the debts over.
        consent = await http.post(
            f"{intake_url}/v1/clients/{trajectory['client_ref']}/consents",
            json={
                "partner_organisation_id": DEBT,
                "purpose": "debt_counselling",
                "granted_at": datetime.now(UTC).isoformat(),
            },
        )
        assert consent.status_code == 201, consent.text

        async def handed_off() -> Any:
            request = await http.post(
                f"{base}/partner-referrals", json={"partner_organisation_id": DEBT}
            )
            if request.status_code == 409 and "consent" in request.text:
                return None  # trajectory has not heard of the consent yet
            assert request.status_code == 201, request.text
            return request.json()

        hand_off = await eventually(handed_off, "trajectory to know the consent")
        received = await debt.next_request()
        assert received.id == hand_off["partner_referral_id"]
        assert received.contact == {
            "name": RESIDENT["name"],
            "phone": RESIDENT["phone"],
            "language": "nl",
        }
        assert received.request.postcode_area == "3522"
        await debt.report(received.id, PartnerStatus.ARRANGEMENT_RUNNING)
        await debt.complete(received.id, PartnerOutcome.ARRANGEMENT_COMPLETED)

        async def partner_finished() -> Any:
            current = (await http.get(base)).json()
            return current if current["aftercare_suggested"] else None

        current = await eventually(partner_finished, "the partner's completion in the trajectory")
        [recorded] = current["partner_referrals"]
        assert recorded["status"] == "completed"
        assert recorded["progress"] == "arrangement_completed"

        # 5. Aftercare, then closure with a reason.
        aftercare = await http.post(f"{base}/aftercare")
        assert aftercare.status_code == 200, aftercare.text
        assert aftercare.json()["phase"] == "aftercare"
        closed = await http.post(f"{base}/closure", json={"reason": "goal_reached"})
        assert closed.status_code == 200, closed.text

        # 6. The GP heard exactly four things, in order, and nothing about the case.
        statuses = await gp.wait_for_statuses(
            referral_id, ["received", "accepted", "first_contact", "closed"]
        )
        assert statuses == ["received", "accepted", "first_contact", "closed"]
        final = await gp.status(referral_id)
        assert final.json()["status"] == "closed"

        dump = await dump_every_topic(bootstrap)
    finally:
        await http.aclose()
        await client.close()
        await gp.stop()
        await debt.stop()

    gp_topic = dump[f"ketenbus.partners.{GP}.outbound.v1"]
    assert len(gp_topic) == 4
    assert [json.loads(m)["data"]["status"] for m in gp_topic] == statuses
    for message in gp_topic:
        envelope = json.loads(message)
        assert envelope["type"] == ReferralStatusChanged.event_type()
        assert set(envelope["data"]) <= CLOSED_LOOP_FIELDS
    assert gp.failures == [] and debt.failures == []
    # No topic holds the person in plaintext: not the GP's, not the partner's, not the chain's.
    assert sum(len(messages) for messages in dump.values()) > 30
    for topic, messages in dump.items():
        for message in messages:
            for value in PERSONAL:
                assert value not in message, f"{topic} holds {value!r}"
    for service in ("intake", "trajectory", "learning"):
        log = stack.log_path(service).read_text(encoding="utf-8")
        for value in PERSONAL:
            assert value.decode() not in log, f"{service}'s log holds {value!r}"
