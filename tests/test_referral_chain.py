"""The closed-loop referral chain through real processes: a GP refers, the welfare
organisation helps, debt counselling takes the debts in parallel, the GP sees the loop close.

intake, trajectory and learning run as their own processes on their own Apache Kafka
and SecantusDB; the GP practice and the debt-counselling partner are the simulators in
ketenbus.devstack.partners, which know nothing but the contracts, Kafka and HTTP. The steps are
the demo's (ketenbus.devstack.partner_demo), so the demo is tested too.
"""

from __future__ import annotations

import json
import time

import pytest
from aiokafka import AIOKafkaConsumer

from ketenbus.contracts.events import ReferralStatusChanged
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.partner_demo import (
    DEBT,
    FEEDBACK,
    FEMKE,
    GP,
    HOMEWORK_ANSWER,
    run_closed_loop,
)
from ketenbus.kit.broker import partitions_of

pytestmark = [pytest.mark.stack, pytest.mark.chain]

# Every way the person could show up on a topic: name, surname, phone in both spellings, mail.
PERSONAL = [b"Femke", b"Jansen-Bakker", b"06-48213975", b"0648213975", b"femke.jansen"]
# What the client and the worker wrote: case content, never on a topic in plaintext.
CASE_CONTENT = [HOMEWORK_ANSWER.encode(), FEEDBACK.encode(), b"post en rekeningen"]
CLOSED_LOOP_FIELDS = {
    "referral_id",
    "referrer_organisation_id",
    "referrer_reference",
    "status",
    "reason",
    "redirect",
    "changed_at",
}


async def dump_every_topic(kafka: KafkaAccess) -> dict[str, list[bytes]]:
    """Every message on every topic of the broker, from the beginning to the end as it is now."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        topics = sorted(await consumer.topics())
        partitions = await partitions_of(consumer, topics)
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

    outcome = await run_closed_loop(stack, quiet=True)
    dump = await dump_every_topic(stack.kafka)

    assert outcome.referral["status"] == "accepted"
    trajectory = outcome.trajectory
    assert [a["status"] for a in trajectory["appointments"]] == ["missed", "attended", "attended"]
    assert trajectory["modules"][0]["completed"] is True
    # Homework went from the portal to the worker and the feedback back, sealed on the way.
    [homework] = trajectory["homework"]
    assert homework["feedback_given_at"] is not None
    assert outcome.feedback_seen == FEEDBACK
    assert trajectory["phase"] == "aftercare" and trajectory["debt_journey_phase"] == 5
    assert trajectory["closure_reason"] == "goal_reached"
    [hand_off] = trajectory["partner_referrals"]
    assert (hand_off["status"], hand_off["progress"]) == ("completed", "arrangement_completed")
    # The partner could open the contact it was given: the consented minimum, nothing more.
    assert outcome.hand_off is not None
    assert outcome.hand_off.contact == {
        "name": FEMKE["name"],
        "phone": FEMKE["phone"],
        "language": "nl",
    }
    assert outcome.hand_off.answers == [
        "PartnerReferralAccepted",
        "PartnerStatusChanged",
        "PartnerCompleted",
    ]
    assert outcome.hand_off.request.postcode_area == "3522"
    assert outcome.simulator_failures == []

    # The GP's topic holds exactly four messages: the loop, in order, and no case content.
    assert outcome.statuses == ["received", "accepted", "first_contact", "closed"]
    gp_topic = dump[f"ketenbus.partners.{GP}.outbound.v1"]
    assert [json.loads(m)["data"]["status"] for m in gp_topic] == outcome.statuses
    for message in gp_topic:
        envelope = json.loads(message)
        assert envelope["type"] == ReferralStatusChanged.event_type()
        assert set(envelope["data"]) <= CLOSED_LOOP_FIELDS
        assert envelope["data"]["referral_id"] == outcome.referral["referral_id"]

    # No topic holds the person in plaintext: not the GP's, not the partner's, not the chain's.
    assert len(dump[f"ketenbus.partners.{DEBT}.outbound.v1"]) == 1
    assert sum(len(messages) for messages in dump.values()) > 30
    for topic, messages in dump.items():
        for message in messages:
            for value in [*PERSONAL, *CASE_CONTENT]:
                assert value not in message, f"{topic} holds {value!r}"
    for service in ("intake", "trajectory", "learning"):
        log = stack.log_path(service).read_text(encoding="utf-8")
        for value in PERSONAL:
            assert value.decode() not in log, f"{service}'s log holds {value!r}"
