"""Who may do what on Kafka: a user per service and per partner, each with only its grants.

One model for every place that secures the bus: the embedded stack (ketenbus.devstack),
the Strimzi users of deploy/k8s and the compose stack. A service reads the streams it
consumes and writes the streams it owns, plus the dead-letter topic of every topic it reads
(the kit's consumer puts a bad message there); its consumer group is named after it. A partner
writes only its own inbound topic and reads only its own outbound topic. Nobody but the
operator creates topics or changes ACLs.

One service, the purger, also reads, writes and deletes records of every dead-letter topic:
after an erasure it forgets the client's dead letters (ketenbus.kit.dead_letter_purges). One
service for all of them, so that the lease in its own database keeps two purges of a partition
apart; trajectory, the case service, which already reads most streams and the partners'
inbound topics, and which no other work on the bus depends on for its speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ketenbus.contracts import topics

T = topics


@dataclass(frozen=True)
class Access:
    """What one service does on Kafka. Partner topics are named per partner when granted."""

    reads: tuple[topics.Topic, ...] = ()
    writes: tuple[topics.Topic, ...] = ()
    reads_partner_inbound: bool = False
    writes_partner_outbound: bool = False


# Who reads and writes what (DOMAIN.md, the event catalogue in ketenbus.contracts.events).
SERVICE_ACCESS: dict[str, Access] = {
    # Referrals and consent; the closed loop back to referrers; partners' referrals in;
    # early-warning signals and their outreach.
    "intake": Access(
        reads=(T.TRAJECTORIES,),
        writes=(T.REFERRALS, T.CLIENTS, T.CONTACTS, T.SIGNALS),
        reads_partner_inbound=True,
        writes_partner_outbound=True,
    ),
    # Trajectories from accepted referrals; hand-offs to and answers from debt counselling
    # (the contact card sealed for the partner from the contacts topic).
    "trajectory": Access(
        reads=(T.REFERRALS, T.CLIENTS, T.CONTACTS, T.ENROLMENTS, T.DELIVERIES),
        writes=(T.TRAJECTORIES,),
        reads_partner_inbound=True,
        writes_partner_outbound=True,
    ),
    # Reminders for appointments, waiting-list invitations; contact details from intake.
    "notifications": Access(
        reads=(T.REFERRALS, T.CLIENTS, T.CONTACTS, T.TRAJECTORIES, T.ENROLMENTS),
        writes=(T.DELIVERIES,),
    ),
    # Self-help modules, assigned in a trajectory or started from the waiting list.
    "learning": Access(
        reads=(T.REFERRALS, T.CLIENTS, T.TRAJECTORIES),
        writes=(T.ENROLMENTS,),
    ),
    # Counts everything, publishes aggregates only.
    "analytics": Access(
        reads=(
            T.REFERRALS,
            T.CLIENTS,
            T.SIGNALS,
            T.TRAJECTORIES,
            T.ENROLMENTS,
            T.DELIVERIES,
            T.BENCHMARKS,
        ),
        writes=(T.BENCHMARKS,),
    ),
}


# Forgets erased clients' dead letters on every dead-letter topic (see the docstring).
DEAD_LETTER_PURGER = "trajectory"


def topics_with_dead_letters(partner_ids: Sequence[str]) -> list[str]:
    """Every topic some service reads, so whose `.dlq` may hold a dead letter."""
    return sorted(
        {name for service in SERVICE_ACCESS for name in service_topics(service, partner_ids)[0]}
    )


def service_purges(service: str, partner_ids: Sequence[str]) -> list[str]:
    """The dead-letter topics whose records the service deletes (the purger: all of them)."""
    if service != DEAD_LETTER_PURGER:
        return []
    return [topics.dead_letter_topic(name) for name in topics_with_dead_letters(partner_ids)]


PURGE_OPERATIONS = ("Describe", "Read", "Write", "Delete")


def service_user(service: str) -> str:
    return f"ketenbus-{service}"


def partner_user(organisation_id: str) -> str:
    topics.partner_inbound(organisation_id)  # validates the organisation id
    return f"partner-{organisation_id}"


def partner_group_prefix(organisation_id: str) -> str:
    # Group ids `<org>.<anything>`: the dot cannot occur in an organisation id, so no
    # partner's prefix covers another's groups (huisarts-de vs huisarts-de-linde).
    return f"{organisation_id}."


@dataclass(frozen=True, slots=True)
class Grant:
    """One ALLOW ACL: `user` may do `operation` on a topic or group (literal or prefixed)."""

    user: str
    operation: str  # Kafka's names: Read, Write, Describe, Delete
    resource: str  # topic or group
    name: str
    pattern: str = "literal"  # or prefixed


def service_topics(service: str, partner_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(topics the service reads, topics it writes), partner topics and DLQs included."""
    access = SERVICE_ACCESS[service]
    reads = [t.name for t in access.reads]
    writes = [t.name for t in access.writes]
    if access.reads_partner_inbound:
        reads += [topics.partner_inbound(org).name for org in partner_ids]
    if access.writes_partner_outbound:
        writes += [topics.partner_outbound(org).name for org in partner_ids]
    writes += [topics.dead_letter_topic(name) for name in reads]
    return reads, writes


def service_grants(service: str, partner_ids: Sequence[str]) -> list[Grant]:
    """Write implies idempotent producing on Kafka 3.0 and later (KIP-679): no cluster grant."""
    user = service_user(service)
    reads, writes = service_topics(service, partner_ids)
    grants = [Grant(user, "Read", "group", service)]
    for name in reads:
        grants += [Grant(user, "Describe", "topic", name), Grant(user, "Read", "topic", name)]
    for name in writes:
        grants += [Grant(user, "Describe", "topic", name), Grant(user, "Write", "topic", name)]
    for name in service_purges(service, partner_ids):
        grants += [Grant(user, operation, "topic", name) for operation in PURGE_OPERATIONS]
    return grants


def partner_grants(organisation_id: str) -> list[Grant]:
    user = partner_user(organisation_id)
    inbound = topics.partner_inbound(organisation_id).name
    outbound = topics.partner_outbound(organisation_id).name
    prefix = partner_group_prefix(organisation_id)
    return [
        Grant(user, "Describe", "topic", inbound),
        Grant(user, "Write", "topic", inbound),
        Grant(user, "Describe", "topic", outbound),
        Grant(user, "Read", "topic", outbound),
        Grant(user, "Read", "group", prefix, pattern="prefixed"),
    ]


def all_grants(partner_ids: Sequence[str]) -> list[Grant]:
    grants = [g for service in SERVICE_ACCESS for g in service_grants(service, partner_ids)]
    return grants + [g for org in partner_ids for g in partner_grants(org)]
