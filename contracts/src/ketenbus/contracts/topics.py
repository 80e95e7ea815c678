"""The topic registry: one topic per stream, so events about one case stay in order.

Every topic is keyed by the pseudonymous client reference. Partners get a pair of topics of
their own: they write only to `inbound`, and read only from `outbound`.

Retention is decided here, once, for the stack, compose and Kubernetes alike:
- the internal streams are the system of record that `ketenbus analytics rebuild` replays, so
  they keep every event (`retention.ms=-1`): a broker default of a week would shrink years of
  steering figures to the last week at the next rebuild;
- a partner's topics are a mailbox, not a record: 30 days, time enough for a partner that was
  away to catch up;
- a dead-letter topic waits for a person, and never keeps a record longer than the topic it
  came from: 30 days, or its source topic's retention when that is shorter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ORGANISATION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


KEEP_FOREVER = -1
DAY_MS = 24 * 3600 * 1000
PARTNER_RETENTION_MS = 30 * DAY_MS
DEAD_LETTER_RETENTION_MS = 30 * DAY_MS


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    owner: str
    description: str
    partitions: int = 3
    retention_ms: int = KEEP_FOREVER

    @property
    def dlq(self) -> str:
        return dead_letter_topic(self.name)

    @property
    def dlq_retention_ms(self) -> int:
        if self.retention_ms == KEEP_FOREVER:
            return DEAD_LETTER_RETENTION_MS
        return min(self.retention_ms, DEAD_LETTER_RETENTION_MS)

    def config(self) -> dict[str, str]:
        """The topic's settings on the broker (explicit, never the broker's defaults)."""
        return {"retention.ms": str(self.retention_ms), "retention.bytes": "-1"}

    def dlq_config(self) -> dict[str, str]:
        return {"retention.ms": str(self.dlq_retention_ms), "retention.bytes": "-1"}


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
SIGNALS = Topic(
    "ketenbus.intake.signals.v1",
    "intake",
    "Early-warning signals of arrears: received, outreach, the resident's answer, deletion. "
    "Nothing that points to a person: the signal's details stay in intake.",
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
    SIGNALS,
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
        retention_ms=PARTNER_RETENTION_MS,
    )


def partner_outbound(organisation_id: str) -> Topic:
    """What the chain tells a partner: status feedback and hand-off requests, nothing more."""
    org = _checked_organisation(organisation_id)
    return Topic(
        f"ketenbus.partners.{org}.outbound.v1",
        "chain",
        f"Events the chain sends to partner {org}.",
        partitions=1,
        retention_ms=PARTNER_RETENTION_MS,
    )


PARTNER_TOPIC_PATTERN = re.compile(r"^ketenbus\.partners\.([a-z0-9-]+)\.(inbound|outbound)\.v1$")


def topics_for_partners(organisation_ids: list[str]) -> tuple[Topic, ...]:
    return tuple(
        t for org in organisation_ids for t in (partner_inbound(org), partner_outbound(org))
    )
