"""The demo scenario: one resident's way through the chain, step by step, with its events.

A GP refers Sanne (with her consent); the welfare organisation's social worker plans an
appointment that she misses; she gets a kind e-mail; she works through a self-help module;
the trajectory records it; analytics counted every event along the way.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ketenbus.devstack.chain_client import ChainClient, eventually
from ketenbus.devstack.stack import EmbeddedStack

GP = "huisarts-de-linde"
WELFARE = "welzijn-utrecht"
MODULE = "grip-op-je-geld"

SANNE = {
    "referrer_type": "gp",
    "referrer_reference": "HDL-2026-0142",
    "topic": "psychosocial",
    "urgency": {"threatened_eviction": False, "disconnection": False},
    "client": {
        "name": "Sanne de Vries",
        "date_of_birth": "1988-04-12",
        "postcode": "3512 JE",
        "phone": "06-12345678",
        "email": "sanne.devries@example.org",
        "language": "nl",
        "preferred_channel": "email",
    },
    # Feedback to the GP, and reminders: without that consent notifications sends nothing.
    "consent": {
        "given_by": "client",
        "purposes": ["referral_feedback", "reminders"],
        "granted_at": "2026-03-02T09:10:00+01:00",
    },
}


SKELETON_EVENTS = (
    "ReferralReceived",
    "ReferralAccepted",
    "TrajectoryOpened",
    "AppointmentScheduled",
    "AppointmentMissed",
    "ReminderSent",
    "ModuleAssigned",
    "ModuleCompleted",
    "ModuleProgressRecorded",
)


@dataclass
class Outcome:
    referral: dict[str, Any] = field(default_factory=dict)
    trajectory: dict[str, Any] = field(default_factory=dict)
    appointment: dict[str, Any] = field(default_factory=dict)
    enrolment: dict[str, Any] = field(default_factory=dict)
    mail_subject: str = ""
    events_seen: dict[str, int] = field(default_factory=dict)


def _say(step: int, text: str, event: str) -> None:
    print(f"  {step}. {text:<62} -> {event}", flush=True)


def events_seen(metrics: str) -> dict[str, int]:
    pattern = re.compile(
        r'^ketenbus_analytics_events_seen\{event_type="nl\.ketenbus\.[a-z]+\.(\w+)\.v\d+"\} (\S+)$'
    )
    return {
        m.group(1): int(float(m.group(2))) for m in map(pattern.match, metrics.splitlines()) if m
    }


async def run_skeleton(stack: EmbeddedStack, *, quiet: bool = False) -> Outcome:
    say = (lambda *a: None) if quiet else _say
    client = ChainClient(stack.urls(), stack.api_token, stack.kafka, stack.replica_urls())
    outcome = Outcome()
    try:
        mails_before = len(stack.mailbox())
        outcome.referral = await client.refer(GP, SANNE, idempotency_key=f"HDL-{uuid.uuid4().hex}")
        say(
            1,
            f"GP practice {GP} refers a resident (status {outcome.referral['status']})",
            "ReferralReceived, ReferralAccepted",
        )
        trajectory = await client.trajectory_for(WELFARE, outcome.referral["referral_id"])
        say(2, f"{WELFARE} opens a trajectory", "TrajectoryOpened")
        starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        outcome.appointment = await client.schedule(
            WELFARE, trajectory["trajectory_id"], starts, kind="intake", modality="face_to_face"
        )
        say(3, "the social worker schedules an intake appointment", "AppointmentScheduled")
        await client.register(
            WELFARE, trajectory["trajectory_id"], outcome.appointment["appointment_id"], "missed"
        )
        say(4, "the resident does not come; the worker registers it", "AppointmentMissed")

        async def mail() -> Any:
            return next(iter(stack.mailbox()[mails_before:]), None)

        message = await eventually(mail, "the follow-up e-mail at the mail sink")
        outcome.mail_subject = str(message["Subject"])
        say(5, f'notifications sends a kind e-mail: "{outcome.mail_subject}"', "ReminderSent")
        assigned = await client.assign_module(WELFARE, trajectory["trajectory_id"], MODULE)
        say(6, f"the worker assigns the self-help module {MODULE}", "ModuleAssigned")
        await client.enrolment(WELFARE, trajectory["client_ref"], assigned["enrolment_id"])
        outcome.enrolment = await client.complete_module(
            WELFARE, trajectory["client_ref"], assigned["enrolment_id"]
        )
        say(7, "the resident works through it in the client portal", "ModuleCompleted")

        async def recorded() -> Any:
            current = await client.trajectory(WELFARE, trajectory["trajectory_id"])
            return current if all(m["completed"] for m in current["modules"]) else None

        outcome.trajectory = await eventually(recorded, "the module in the trajectory")
        say(8, "trajectory records the completed module", "ModuleProgressRecorded")

        async def counted() -> Any:
            # Events on different topics arrive in no fixed order: wait for all of them.
            seen = events_seen(await client.metrics("analytics"))
            return seen if all(seen.get(name) for name in SKELETON_EVENTS) else None

        outcome.events_seen = await eventually(counted, "analytics to count the last event")
        say(
            9,
            f"analytics counted {sum(outcome.events_seen.values())} events of "
            f"{len(outcome.events_seen)} types",
            "ketenbus_analytics_events_seen",
        )
    finally:
        await client.close()
    return outcome


def run(stack: EmbeddedStack) -> None:
    """`make demo`: a realistic year through the real services (see year.py), then the report.
    KETENBUS_DEMO=skeleton runs the one-resident walking skeleton instead."""
    if os.environ.get("KETENBUS_DEMO") == "skeleton":
        run_walking_skeleton(stack)
        return
    from ketenbus.devstack.year import run_demo_year

    run_demo_year(stack)


def run_walking_skeleton(stack: EmbeddedStack) -> None:
    print("\nKetenbus walking skeleton: one resident through the chain\n")
    outcome = asyncio.run(run_skeleton(stack))
    print("\nEvents counted by analytics:")
    for name, count in sorted(outcome.events_seen.items()):
        print(f"  {name:<28} {count}")
    urls = stack.urls()
    print("\nLook further:")
    for service in ("intake", "trajectory", "notifications", "learning", "analytics"):
        print(
            f"  {service:<14} {urls[service]}/docs  {urls[service]}/asyncapi"
            f"  {urls[service]}/metrics"
        )
    print(f"  mail received  {stack.mail_dir}")
    print("\nThe stack keeps running; `uv run ketenbus down` (or `make down`) stops it.")
