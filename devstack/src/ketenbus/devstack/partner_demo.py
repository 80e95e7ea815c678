"""The closed loop, step by step: a GP practice refers, the social worker helps, debt
counselling takes the debts in parallel, and the GP sees the loop close, knowing nothing more.

    uv run ketenbus up
    uv run python -m ketenbus.devstack.partner_demo      # on that stack (KETENBUS_HOME)

Needs intake, trajectory and learning, and the topics of the partners `huisarts-de-linde`
and `schuldhulp-midden` (which `ketenbus up` creates). tests/test_referral_chain.py runs it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from ketenbus.contracts.events import PartnerOutcome, PartnerStatus
from ketenbus.devstack import partner_keys
from ketenbus.devstack.chain_client import ChainClient, ChainError, eventually
from ketenbus.devstack.partners import DebtCounsellingPartner, GpPractice, HandOff
from ketenbus.devstack.stack import EmbeddedStack

GP = "huisarts-de-linde"
DEBT = "schuldhulp-midden"
WELFARE = "welzijn-utrecht"
MODULE = "grip-op-je-geld"

FEMKE = {
    "name": "Femke Jansen-Bakker",
    "date_of_birth": "1979-11-23",
    "postcode": "3522 BK",
    "phone": "06-48213975",
    "email": "femke.jansen@example.org",
    "language": "nl",
    "preferred_channel": "email",
}


@dataclass
class LoopOutcome:
    referral: dict[str, Any] = field(default_factory=dict)
    trajectory: dict[str, Any] = field(default_factory=dict)
    hand_off: HandOff | None = None
    statuses: list[str] = field(default_factory=list)
    gp_heard: list[Any] = field(default_factory=list)
    homework_answer: str = ""
    feedback_seen: str = ""
    simulator_failures: list[str] = field(default_factory=list)


def _say(step: int, text: str, event: str) -> None:
    print(f"  {step:>2}. {text:<64} -> {event}", flush=True)


async def run_closed_loop(stack: EmbeddedStack, *, quiet: bool = False) -> LoopOutcome:
    say = (lambda *a: None) if quiet else _say
    kafka = stack.kafka
    intake, trajectories = stack.service_url("intake"), stack.service_url("trajectory")
    gp = GpPractice(
        GP,
        kafka,
        intake_url=intake,
        api_key=stack.api_token(GP, "referrer"),
        sharing_key=partner_keys.key(stack.home, GP),
    )
    debt = DebtCounsellingPartner(DEBT, kafka, sharing_key=partner_keys.key(stack.home, DEBT))
    client = ChainClient(stack.urls(), stack.api_token, stack.kafka)
    worker = httpx.AsyncClient(
        timeout=10.0, headers={"Authorization": f"Bearer {stack.api_token(WELFARE, 'worker')}"}
    )
    outcome = LoopOutcome()
    await gp.start()
    await debt.start()
    try:
        answer = await gp.refer(
            {
                "referrer_type": "gp",
                "referrer_reference": f"HDL-{uuid.uuid4().hex[:8]}",
                "topic": "debts_material",
                "client": FEMKE,
                "consent": {
                    "given_by": "client",
                    "purposes": ["referral_feedback", "reminders"],
                    "granted_at": datetime.now(UTC).isoformat(),
                },
            },
            idempotency_key=f"HDL-{uuid.uuid4().hex}",
        )
        if answer.status_code != 201:
            raise ChainError(f"the referral was refused: {answer.status_code} {answer.text}")
        outcome.referral = answer.json()
        referral_id = outcome.referral["referral_id"]
        say(1, f"GP {GP} refers a resident ({outcome.referral['status']})", "ReferralReceived")

        trajectory = await client.trajectory_for(WELFARE, referral_id)
        base = f"{trajectories}/v1/trajectories/{trajectory['trajectory_id']}"

        async def act(path: str, body: Any = None, expect: int = 200) -> dict[str, Any]:
            response = await worker.post(f"{base}{path}", json=body)
            if response.status_code != expect:
                raise ChainError(f"POST {path}: {response.status_code} {response.text}")
            result: dict[str, Any] = response.json()
            return result

        say(2, f"{WELFARE} opens a trajectory", "TrajectoryOpened")

        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        planned = []
        for week, (kind, modality) in enumerate(
            [("intake", "face_to_face"), ("intake", "video"), ("follow_up", "phone")]
        ):
            made = await act(
                "/appointments",
                {
                    "kind": kind,
                    "modality": modality,
                    "starts_at": (start + timedelta(weeks=week)).isoformat(),
                    "goal": "Overzicht maken van post en rekeningen",
                },
                expect=201,
            )
            planned.append(made["appointment_id"])
        say(3, "the worker plans three appointments", "AppointmentScheduled x3")
        await act(
            f"/appointments/{planned[1]}/reschedule",
            {"starts_at": (start + timedelta(days=8)).isoformat()},
        )
        say(4, "the second one moves a day", "AppointmentRescheduled")
        await act(f"/appointments/{planned[0]}/missed")
        say(5, "the resident misses the first; support follows, not closure", "AppointmentMissed")
        await act(f"/appointments/{planned[1]}/attended")
        say(6, "the second takes place: the referrer hears of first contact", "FirstContactMade")
        await act(f"/appointments/{planned[2]}/attended")
        await act(
            "/contacts",
            {
                "channel": "dossier_message",
                "minutes": 10,
                "default_duration": True,
                "online_dossier": True,
                "occurred_at": datetime.now(UTC).isoformat(),
            },
            expect=201,
        )
        await act("/phase", {"phase": "guidance", "debt_journey_phase": 3})
        say(7, "a dossier message; guidance, debt journey phase 3", "ContactRegistered")

        assigned = await client.assign_module(WELFARE, trajectory["trajectory_id"], MODULE)
        await client.enrolment(WELFARE, trajectory["client_ref"], assigned["enrolment_id"])
        say(8, f"the worker assigns module {MODULE} as homework", "ModuleAssigned")
        token = await client.portal_token(WELFARE, trajectory["client_ref"])
        outcome.feedback_seen = await _homework(
            stack, worker, base, assigned["enrolment_id"], token, outcome
        )
        say(9, "homework handed in, answered by the worker, read", "HomeworkFeedbackGiven")
        await client.complete_module(WELFARE, trajectory["client_ref"], assigned["enrolment_id"])

        async def module_recorded() -> Any:
            current = (await worker.get(base)).json()
            return current if all(m["completed"] for m in current["modules"]) else None

        await eventually(module_recorded, "the completed module in the trajectory")
        say(10, "the client completes the module; trajectory records it", "ModuleProgressRecorded")

        consent = await worker.post(
            f"{intake}/v1/clients/{trajectory['client_ref']}/consents",
            json={
                "partner_organisation_id": DEBT,
                "purpose": "debt_counselling",
                "granted_at": datetime.now(UTC).isoformat(),
            },
        )
        if consent.status_code != 201:
            raise ChainError(f"consent not recorded: {consent.status_code} {consent.text}")
        say(11, f"the resident consents to debt counselling by {DEBT}", "PartnerContactSealed")

        async def handed_off() -> Any:
            asked = await worker.post(
                f"{base}/partner-referrals", json={"partner_organisation_id": DEBT}
            )
            if asked.status_code == 409 and asked.json().get("code") == "no_consent":
                return None  # trajectory has not heard of the consent yet
            if asked.status_code != 201:
                raise ChainError(f"hand-off refused: {asked.status_code} {asked.text}")
            return asked.json()

        await eventually(handed_off, "trajectory to know of the consent")
        outcome.hand_off = await debt.next_request()
        say(12, "the worker hands the debts over; the partner accepts", "PartnerReferralRequested")
        await debt.report(outcome.hand_off.id, PartnerStatus.ARRANGEMENT_RUNNING)
        await debt.complete(outcome.hand_off.id, PartnerOutcome.ARRANGEMENT_COMPLETED)

        async def partner_finished() -> Any:
            current = (await worker.get(base)).json()
            return current if current["aftercare_suggested"] else None

        await eventually(partner_finished, "the partner's completion in the trajectory")
        say(13, "debt arrangement running, then completed: aftercare suggested", "PartnerCompleted")
        await act("/aftercare")
        outcome.trajectory = await act("/closure", {"reason": "goal_reached"})
        say(14, "aftercare starts; the trajectory closes, goal reached", "TrajectoryClosed")

        outcome.statuses = await gp.wait_for_statuses(
            referral_id, ["received", "accepted", "first_contact", "closed"]
        )
        say(15, f"the GP heard: {', '.join(outcome.statuses)}", "ReferralStatusChanged x4")
        outcome.gp_heard = list(gp.received)
        outcome.simulator_failures = gp.failures + debt.failures
    finally:
        await worker.aclose()
        await client.close()
        await gp.stop()
        await debt.stop()
    return outcome


HOMEWORK_ANSWER = "Ik heb alle rekeningen van deze maand op een rij gezet."
FEEDBACK = "Mooi overzicht! Volgende keer kijken we samen naar de energierekening."


async def _homework(
    stack: EmbeddedStack,
    worker: httpx.AsyncClient,
    trajectory_url: str,
    enrolment_id: str,
    portal_token: str,
    outcome: LoopOutcome,
) -> str:
    """The client hands in homework in the portal (learning), with the portal token their
    worker issued; the worker sees it in the trajectory and answers; the answer reaches the
    client sealed. Returns what the client reads."""
    enrolment = f"{stack.service_url('learning')}/v1/enrolments/{enrolment_id}"
    portal = httpx.AsyncClient(timeout=10.0, headers={"Authorization": f"Bearer {portal_token}"})
    try:
        progress = (await portal.get(enrolment)).raise_for_status().json()
        step = next(s["step_id"] for s in progress["steps"] if s["kind"] == "homework")
        (await portal.post(f"{enrolment}/start")).raise_for_status()
        outcome.homework_answer = HOMEWORK_ANSWER
        handed_in = await portal.post(
            f"{enrolment}/steps/{step}/homework", json={"answer": HOMEWORK_ANSWER}
        )
        submission = handed_in.raise_for_status().json()["submission_id"]

        async def seen_by_worker() -> Any:
            listed = (await worker.get(f"{trajectory_url}/homework")).json()
            return any(h["submission_id"] == submission for h in listed)

        await eventually(seen_by_worker, "the homework in the worker's trajectory")
        answered = await worker.post(
            f"{trajectory_url}/homework/{submission}/feedback", json={"text": FEEDBACK}
        )
        if answered.status_code != 200:
            raise ChainError(f"feedback refused: {answered.status_code} {answered.text}")

        async def read_by_client() -> Any:
            homework = (await portal.get(enrolment)).json()["homework"]
            return next((h["feedback"] for h in homework if h["feedback"]), None)

        feedback: str = await eventually(read_by_client, "the feedback in the client portal")
        return feedback
    finally:
        await portal.aclose()


def main(argv: list[str] | None = None) -> int:
    home = Path(os.environ.get("KETENBUS_HOME") or ".ketenbus")
    stack = EmbeddedStack(home)
    if not stack.is_running():
        print(f"no stack running in {home}: start one with `uv run ketenbus up`", file=sys.stderr)
        return 1
    print("\nKetenbus: the closed loop of a GP referral, with a debt-counselling hand-off\n")
    try:
        asyncio.run(run_closed_loop(stack))
    except ChainError as error:
        print(f"\nthe demo stopped: {error}", file=sys.stderr)
        return 1
    urls = stack.urls()
    print(f"\nThe partner front door: {urls['intake']}/docs; its topics: {urls['intake']}/asyncapi")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
