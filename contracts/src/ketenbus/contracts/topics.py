"""The topic registry: one topic per stream, so events about one case stay in order.

Every topic is keyed by the pseudonymous client reference. Partners get a pair of topics of
their own: they write only to `inbound`, and read only from `outbound`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ORGANISATION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    owner: str
    description: str
    partitions: int = 3

    @property
    def dlq(self) -> str:
        return dead_letter_topic(self.name)


REFERRALS = Topic(
    "ketenbus.intake.referrals.v1",
    "intake",
    "Referrals from receipt through triage and the waiting list.",
)
CLIENTS = Topic(
    "ketenbus.intake.clients.v1",
    "intake",
    "Consent, encrypted contact details for notifications, and erasure requests.",
)
TRAJECTORIES = Topic(
    "ketenbus.trajectory.trajectories.v1",
    "trajectory",
    "Help trajectories: phases, appointments, contacts, homework, hand-offs, closure.",
)
ENROLMENTS = Topic(
    "ketenbus.learning.enrollments.v1",
    "learning",
    "Self-help modules and questionnaires: started, progressed, completed, abandoned.",
)
DELIVERIES = Topic(
    "ketenbus.notifications.deliveries.v1",
    "notifications",
    "Reminders and follow-ups: scheduled, sent, failed, cancelled; opt-outs.",
)
BENCHMARKS = Topic(
    "ketenbus.analytics.benchmarks.v1",
    "analytics",
    "Aggregate steering figures for the sector benchmark. No client-level data.",
    partitions=1,
)

INTERNAL_TOPICS: tuple[Topic, ...] = (
    REFERRALS,
    CLIENTS,
    TRAJECTORIES,
    ENROLMENTS,
    DELIVERIES,
    BENCHMARKS,
)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def _checked_organisation(organisation_id: str) -> str:
    if not _ORGANISATION_ID.match(organisation_id):
        raise ValueError(f"not a valid organisation id for a topic name: {organisation_id!r}")
    return organisation_id


def partner_inbound(organisation_id: str) -> Topic:
    """What a partner organisation sends to the chain (referrals, hand-off answers)."""
    org = _checked_organisation(organisation_id)
    return Topic(
        f"ketenbus.partners.{org}.inbound.v1",
        org,
        f"Events that partner {org} sends to the chain.",
        partitions=1,
    )


def partner_outbound(organisation_id: str) -> Topic:
    """What the chain tells a partner: status feedback and hand-off requests, nothing more."""
    org = _checked_organisation(organisation_id)
    return Topic(
        f"ketenbus.partners.{org}.outbound.v1",
        "chain",
        f"Events the chain sends to partner {org}.",
        partitions=1,
    )


PARTNER_TOPIC_PATTERN = re.compile(r"^ketenbus\.partners\.([a-z0-9-]+)\.(inbound|outbound)\.v1$")


def topics_for_partners(organisation_ids: list[str]) -> tuple[Topic, ...]:
    return tuple(
        t for org in organisation_ids for t in (partner_inbound(org), partner_outbound(org))
    )
