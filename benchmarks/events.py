"""Events for the benchmarks, made with the contracts package and published exactly as the
owning service's outbox relay publishes them: the envelope's JSON as the value, the subject
as the key, the CloudEvents headers.

Each factory returns consistent events (the same client, referral and trajectory ids across
one case), so the consuming service does its real work on them, not an error path.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import Envelope, Event, wrap
from ketenbus.contracts.events import (
    AppointmentAttended,
    AppointmentScheduled,
    ClientErasureRequested,
    ConsentStatement,
    ContactRegistered,
    ModuleAssigned,
    ModuleCompleted,
    ModuleStarted,
    ModuleStepCompleted,
    ReferralAccepted,
    ReferralReceived,
    ReferralSubmitted,
    TrajectoryClosed,
    TrajectoryOpened,
    TrajectoryPhaseChanged,
    Urgency,
)
from ketenbus.contracts.topics import partner_inbound
from ketenbus.contracts.values import (
    AppointmentKind,
    ClosureReason,
    ConsentGiver,
    ConsentPurpose,
    ContactChannel,
    Language,
    Modality,
    Phase,
    ReferralTopic,
    ReferrerType,
    StepKind,
    WorkType,
    new_id,
)
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.outbox import headers_of

# (organisation, municipality, a postcode area it serves), from intake's packaged regions.
REGIONS = (
    ("welzijn-utrecht", "Utrecht", "3522"),
    ("welzijn-amersfoort", "Amersfoort", "3815"),
    ("welzijn-heuvelrug", "Zeist", "3701"),
)
MODULES = ("grip-op-je-geld", "omgaan-met-stress", "sterker-in-je-netwerk")
WORKER = "mw.utrecht"


def _now() -> datetime:
    return datetime.now(UTC)


def _source(event: Event) -> str:
    return event.owner


def envelope_of(event: Event) -> Envelope[Any]:
    return wrap(event, source=_source(event), time=_now())


def record_of(envelope: Envelope[Any], topic: str | None = None) -> tuple[str, bytes, bytes, Any]:
    """(topic, key, value, headers) as the outbox relay sends it."""
    return (
        topic or envelope.data.destination().name,
        envelope.subject.encode(),
        envelope.to_bytes(),
        [(k, v.encode()) for k, v in headers_of(envelope).items()],
    )


async def publish(kafka: KafkaAccess, records: Iterable[tuple[str, bytes, bytes, Any]]) -> int:
    """As the outbox relay publishes (idempotent, acks from every in-sync replica), as the
    operator: the topics are the registry's, made when the stack started."""
    producer = AIOKafkaProducer(
        **kafka.client_options(), linger_ms=5, acks="all", enable_idempotence=True
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for topic, key, value, headers in records:
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            sent += 1
            if len(pending) >= 1000:
                for future in pending:
                    await future
                pending = []
        for future in pending:
            await future
    finally:
        await producer.stop()
    return sent


def referral_accepted(rng: random.Random) -> ReferralAccepted:
    organisation, municipality, area = rng.choice(REGIONS)
    at = _now()
    return ReferralAccepted(
        referral_id=new_id("ref"),
        client_ref=new_id("cl"),
        organisation_id=organisation,
        funder=municipality,
        work_type=WorkType.GENERAL,
        referrer_type=ReferrerType.GP,
        topic=rng.choice(list(ReferralTopic)),
        postcode_area=area,
        crisis=rng.random() < 0.1,
        consent_id=new_id("cns"),
        received_at=at,
        accepted_at=at,
    )


def appointment_scheduled(rng: random.Random) -> AppointmentScheduled:
    organisation, _, _ = rng.choice(REGIONS)
    # Far enough ahead that both default reminders (24 h and 2 h before) are planned.
    starts = _now() + timedelta(days=3, minutes=rng.randrange(600))
    return AppointmentScheduled(
        trajectory_id=new_id("trj"),
        client_ref=new_id("cl"),
        organisation_id=organisation,
        appointment_id=new_id("apt"),
        kind=AppointmentKind.FOLLOW_UP,
        starts_at=starts,
        duration_minutes=45,
        modality=Modality.FACE_TO_FACE,
        worker_id=WORKER,
        scheduled_at=_now(),
    )


def module_assigned(rng: random.Random) -> ModuleAssigned:
    organisation, _, _ = rng.choice(REGIONS)
    return ModuleAssigned(
        trajectory_id=new_id("trj"),
        client_ref=new_id("cl"),
        organisation_id=organisation,
        enrolment_id=new_id("enr"),
        module_id=rng.choice(MODULES),
        language=Language.NL,
        assigned_at=_now(),
    )


def case_events(rng: random.Random, erase: bool = False) -> list[Event]:
    """One client's way through the chain as analytics sees it: referral, trajectory,
    appointments, contacts, a module, closure (and sometimes erasure)."""
    organisation, municipality, area = rng.choice(REGIONS)
    client, referral, trajectory = new_id("cl"), new_id("ref"), new_id("trj")
    at = _now() - timedelta(days=rng.randrange(1, 300))
    topic = rng.choice(list(ReferralTopic))
    events: list[Event] = [
        ReferralReceived(
            referral_id=referral,
            client_ref=client,
            organisation_id=organisation,
            municipality=municipality,
            postcode_area=area,
            referrer_type=ReferrerType.GP,
            referrer_organisation_id="huisarts-de-linde",
            topic=topic,
            urgency=Urgency(),
            consent_id=new_id("cns"),
            received_at=at,
        ),
        ReferralAccepted(
            referral_id=referral,
            client_ref=client,
            organisation_id=organisation,
            funder=municipality,
            work_type=WorkType.GENERAL,
            referrer_type=ReferrerType.GP,
            topic=topic,
            postcode_area=area,
            crisis=False,
            consent_id=new_id("cns"),
            received_at=at,
            accepted_at=at,
        ),
        TrajectoryOpened(
            trajectory_id=trajectory,
            client_ref=client,
            referral_id=referral,
            organisation_id=organisation,
            funder=municipality,
            work_type=WorkType.GENERAL,
            referrer_type=ReferrerType.GP,
            topic=topic,
            postcode_area=area,
            crisis=False,
            referred_at=at,
            opened_at=at + timedelta(hours=1),
        ),
    ]
    ids = {"trajectory_id": trajectory, "client_ref": client, "organisation_id": organisation}
    for number in range(rng.randrange(1, 4)):
        appointment, starts = new_id("apt"), at + timedelta(days=3 + 7 * number)
        events.append(
            AppointmentScheduled(
                **ids,
                appointment_id=appointment,
                kind=AppointmentKind.INTAKE if number == 0 else AppointmentKind.FOLLOW_UP,
                starts_at=starts,
                duration_minutes=45,
                modality=Modality.FACE_TO_FACE,
                worker_id=WORKER,
                scheduled_at=at + timedelta(hours=2),
            )
        )
        events.append(
            AppointmentAttended(
                **ids,
                appointment_id=appointment,
                kind=AppointmentKind.INTAKE if number == 0 else AppointmentKind.FOLLOW_UP,
                starts_at=starts,
                modality=Modality.FACE_TO_FACE,
                registered_at=starts + timedelta(hours=1),
            )
        )
        events.append(
            ContactRegistered(
                **ids,
                contact_id=new_id("con"),
                channel=rng.choice([ContactChannel.FACE_TO_FACE, ContactChannel.PHONE]),
                minutes=rng.randrange(10, 60),
                occurred_at=starts,
            )
        )
    events.append(
        TrajectoryPhaseChanged(**ids, phase=Phase.GUIDANCE, changed_at=at + timedelta(days=4))
    )
    module = {
        "enrolment_id": new_id("enr"),
        "client_ref": client,
        "organisation_id": organisation,
        "module_id": rng.choice(MODULES),
    }
    events += [
        ModuleAssigned(
            trajectory_id=trajectory,
            language=Language.NL,
            assigned_at=at + timedelta(days=5),
            **module,
        ),
        ModuleStarted(started_at=at + timedelta(days=6), **module),
        ModuleStepCompleted(
            step_id="stap-1",
            step_kind=StepKind.TEXT,
            step_number=1,
            steps_total=2,
            completed_at=at + timedelta(days=7),
            **module,
        ),
        ModuleCompleted(completed_at=at + timedelta(days=8), **module),
    ]
    if rng.random() < 0.8:
        events.append(
            TrajectoryClosed(
                trajectory_id=trajectory,
                client_ref=client,
                organisation_id=organisation,
                referral_id=referral,
                reason=ClosureReason.GOAL_REACHED,
                online_dossier_used=False,
                closed_at=at + timedelta(days=30),
            )
        )
    if erase:
        events.append(
            ClientErasureRequested(
                client_ref=client, organisation_id=organisation, requested_at=_now()
            )
        )
    return events


def analytics_mix(count: int, seed: int = 1) -> list[Event]:
    """About `count` events of whole cases; one case in fifty ends in erasure."""
    rng = random.Random(seed)
    events: list[Event] = []
    while len(events) < count:
        events += case_events(rng, erase=rng.random() < 0.02)
    return events


def many(factory: Any, count: int, seed: int = 1) -> Iterator[Event]:
    rng = random.Random(seed)
    for _ in range(count):
        yield factory(rng)


def person(rng: random.Random, number: int) -> dict[str, Any]:
    """A made-up resident of the region (no real person): unique per number."""
    _, _, area = REGIONS[number % len(REGIONS)]
    letters = "".join(rng.choice("BDFHKLMNPRSTVZ") for _ in range(2))
    return {
        "name": f"Bench Persoon {number}",
        "date_of_birth": f"{1950 + number % 50}-{1 + number % 12:02d}-{1 + number % 28:02d}",
        "postcode": f"{area} {letters}",
        "phone": f"06-{10_000_000 + (number * 7919) % 89_999_999}",
        "email": f"bench{number}.{rng.randrange(10**9)}@example.org",
        "language": "nl",
        "preferred_channel": "email",
    }


def referral_body(rng: random.Random, number: int) -> dict[str, Any]:
    """A referral as a GP sends it to the HTTP front door."""
    return {
        "referrer_type": "gp",
        "referrer_reference": f"BENCH-{number}",
        "topic": rng.choice([t.value for t in ReferralTopic]),
        "client": person(rng, number),
        "consent": {
            "given_by": "client",
            "purposes": ["referral_feedback", "reminders"],
            "granted_at": _now().isoformat(),
        },
    }


def partner_referral(
    rng: random.Random, number: int, partner: str, sharing_key: bytes
) -> tuple[str, bytes, bytes, Any]:
    """A referral on the partner's inbound topic, the client sealed with the partner's key,
    as the partner simulator (ketenbus.devstack.partners.GpPractice) sends it."""
    reference = f"KBENCH-{number}-{rng.randrange(10**9)}"
    sealed = sealing.seal(
        json.dumps(person(rng, number)).encode(),
        data_key=sealing.new_key(),
        key_id=f"{partner}-{reference}"[:64],
        recipient_key=sharing_key,
    )
    event = ReferralSubmitted(
        partner_organisation_id=partner,
        referrer_type=ReferrerType.GP,
        referrer_reference=reference,
        topic=rng.choice(list(ReferralTopic)),
        urgency=Urgency(),
        consent=ConsentStatement(
            given_by=ConsentGiver.CLIENT,
            purposes=(ConsentPurpose.REFERRAL_FEEDBACK,),
            granted_at=_now(),
        ),
        client=sealed,
        submitted_at=_now(),
    )
    envelope = wrap(event, source=partner, time=_now())
    return record_of(envelope, partner_inbound(partner).name)
