"""The walking skeleton through five real service processes on the embedded stack."""

from __future__ import annotations

import httpx
import pytest

from ketenbus.devstack.chain_client import ChainClient
from ketenbus.devstack.scenario import GP, SANNE, SKELETON_EVENTS, WELFARE, run_skeleton

pytestmark = [pytest.mark.stack, pytest.mark.chain]

SERVICES = ("intake", "trajectory", "notifications", "learning", "analytics")


async def test_a_referral_travels_the_whole_chain_and_nothing_personal_leaks(chain):
    stack = chain(SERVICES, isolated=True, timeout=120)

    outcome = await run_skeleton(stack, quiet=True)

    assert outcome.referral["status"] == "accepted"
    assert outcome.mail_subject == "We hebben u gemist"
    [mail] = stack.mailbox()
    assert mail["To"] == SANNE["client"]["email"]
    body = mail.get_content()
    assert body.startswith("Beste Sanne,")
    assert "schuld" not in body.lower() and "geld" not in body.lower()
    assert outcome.enrolment["status"] == "completed"
    assert outcome.trajectory["modules"][0]["completed"] is True
    for event in SKELETON_EVENTS:
        assert outcome.events_seen.get(event) == 1, event

    personal = [SANNE["client"]["name"], "Sanne", "06-12345678", "0612345678", "sanne.devries"]
    for service in SERVICES:
        log = stack.log_path(service).read_text(encoding="utf-8")
        assert log, f"{service} wrote no log at all"
        for value in personal:
            assert value not in log, f"{service}'s log contains {value!r}"


async def test_every_service_exports_faststream_and_kit_metrics(chain):
    stack = chain(("intake", "trajectory"), isolated=True, timeout=120)
    await run_referral_only(stack)

    async with httpx.AsyncClient() as http:
        trajectory = (await http.get(f"{stack.service_url('trajectory')}/metrics")).text
        intake = (await http.get(f"{stack.service_url('intake')}/metrics")).text
    assert "faststream_received_messages_total" in trajectory
    assert (
        'ketenbus_events_handled_total{event_type="nl.ketenbus.intake.ReferralAccepted.v1"'
        in trajectory
    )
    # The outbox relay publishes past FastStream's publish middleware: the kit counts it.
    assert 'ketenbus_outbox_published_total{topic="ketenbus.intake.referrals.v1"}' in intake
    assert "ketenbus_outbox_backlog 0.0" in intake
    assert "ketenbus_ready 1.0" in intake


async def run_referral_only(stack):
    client = ChainClient(stack.urls(), stack.api_token)
    try:
        referral = await client.refer(GP, SANNE)
        await client.trajectory_for(WELFARE, referral["referral_id"])
    finally:
        await client.close()
