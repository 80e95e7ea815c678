"""The topic registry: one topic per stream, so events about one case stay in order.

Every topic is keyed by the pseudonymous client reference (the contacts topic by the reference
and the card's recipient, `contact_card_key`). Partners get a pair of topics of their own:
they write only to `inbound`, and read only from `outbound`.

Retention is decided here, once, for the stack, compose and Kubernetes alike:
- the internal streams are the system of record that `ketenbus analytics rebuild` replays, so
  they keep every event (`retention.ms=-1`): a broker default of a week would shrink years of
  steering figures to the last week at the next rebuild;
- a partner's topics are a mailbox, not a record: 30 days, time enough for a partner that was
  away to catch up;
- a dead-letter topic waits for a person, and never keeps a record longer than the topic it
  came from: 30 days, or its source topic's retention when that is shorter;
- the contacts topic is compacted, not retained: it keeps the latest contact card per client
  and recipient, and a tombstone (the key without a value) written at an erasure or a
  withdrawn consent removes the card at the next compaction (`Compaction` says when).
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
class Compaction:
    """When a compacted topic forgets a card its tombstone covers (docs/security.md).

    Kafka never compacts the active segment: a tombstone removes the earlier record once its
    segment has rolled, which happens at the first record appended after `segment_ms`, and
    then at the log cleaner's next pass that finds the log dirty enough, or at the latest once
    the record is `max_compaction_lag_ms` old. The tombstone itself (a key, nothing more) stays
    readable `delete_retention_ms` longer, so a consumer that was behind still sees it.
    """

    segment_ms: int
    max_compaction_lag_ms: int
    min_cleanable_dirty_ratio: float
    delete_retention_ms: int

    def config(self) -> dict[str, str]:
        return {
            "cleanup.policy": "compact",
            "segment.ms": str(self.segment_ms),
            "max.compaction.lag.ms": str(self.max_compaction_lag_ms),
            "min.cleanable.dirty.ratio": str(self.min_cleanable_dirty_ratio),
            "delete.retention.ms": str(self.delete_retention_ms),
        }


HOUR_MS = 3600 * 1000
# Production: a segment rolls within the hour (given traffic on its partition), a card under
# a tombstone is compacted away within a day, and the tombstone stays a week, longer than
# notifications is ever allowed to lag (an outage of a week is an incident of its own).
CONTACT_COMPACTION = Compaction(
    segment_ms=HOUR_MS,
    max_compaction_lag_ms=DAY_MS,
    min_cleanable_dirty_ratio=0.5,
    delete_retention_ms=7 * DAY_MS,
)


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    owner: str
    description: str
    partitions: int = 3
    retention_ms: int = KEEP_FOREVER
    compaction: Compaction | None = None

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
        settings = {"retention.ms": str(self.retention_ms), "retention.bytes": "-1"}
        if self.compaction is not None:
            settings |= self.compaction.config()
        return settings

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
    "Consent and erasure requests.",
)
CONTACTS = Topic(
    "ketenbus.intake.contacts.v1",
    "intake",
    "The latest sealed contact card per client and recipient; compacted, so the tombstone "
    "of an erasure or a withdrawn consent removes the card from the topic.",
    compaction=CONTACT_COMPACTION,
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
    CONTACTS,
    SIGNALS,
    TRAJECTORIES,
    ENROLMENTS,
    DELIVERIES,
    BENCHMARKS,
)


def contact_card_key(client_ref: str, recipient: str) -> str:
    """The key of a contact card on the contacts topic: compaction keeps one record per key,
    so each recipient's card of a client needs a key of its own."""
    return f"{client_ref}/{recipient}"


def client_of_contact_card(key: str) -> str:
    return key.partition("/")[0]


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
