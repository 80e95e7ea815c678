"""Receiving a referral, the same way whether it came over HTTP or on a partner's topic:
route by postcode, record consent, recognise a person already in care, triage by capacity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from ketenbus.contracts.events import ClientContactShared, PartnerContactSealed, Urgency
from ketenbus.contracts.events.intake import NOTIFICATIONS_CARD, partner_card
from ketenbus.contracts.topics import CONTACTS, contact_card_key
from ketenbus.contracts.values import (
    ConsentGiver,
    ConsentPurpose,
    ReferralTopic,
    new_id,
)
from ketenbus.intake.caseloads import Caseloads
from ketenbus.intake.domain import (
    Consent,
    Referral,
    Referrer,
    consent_partner,
    triage,
    waitlist_position,
)
from ketenbus.intake.personal import PersonalDetails
from ketenbus.intake.regions import RegionTable
from ketenbus.intake.store import IntakeTransaction


@dataclass(frozen=True)
class ConsentGiven:
    given_by: ConsentGiver
    purposes: tuple[ConsentPurpose, ...]
    granted_at: datetime


@dataclass(frozen=True)
class Submission:
    referrer: Referrer
    topic: ReferralTopic
    urgency: Urgency
    client: PersonalDetails
    consent: ConsentGiven


async def receive(
    tx: IntakeTransaction,
    submission: Submission,
    regions: RegionTable,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    referral_id: str | None = None,
) -> Referral:
    """`referral_id`: the same id on every attempt, so that a retried transaction finds the
    place its earlier attempt claimed instead of claiming a second one."""
    now = tx.clock.now()
    details = submission.client
    region = regions.route(details.postcode_area)
    if region is None:
        # Declined before anything about the person is kept: no client record, no consent.
        referral = Referral.receive(
            client_ref=new_id("cl"),
            referrer=submission.referrer,
            topic=submission.topic,
            urgency=submission.urgency,
            postcode_area=details.postcode_area,
            consent_id=new_id("cns"),
            feedback_allowed=ConsentPurpose.REFERRAL_FEEDBACK in submission.consent.purposes,
            region=None,
            at=now,
            referral_id=referral_id,
        )
        await tx.referrals.add(referral, idempotency_key, fingerprint)
        return referral

    organisation_id = region.organisation_id
    client_ref = await tx.clients.register(details, organisation_id)
    original = await tx.referrals.open_for_client(organisation_id, client_ref)
    consents: list[Consent] = []
    for purpose in submission.consent.purposes:
        partner = consent_partner(purpose, submission.referrer.organisation_id, region)
        if partner is None:
            continue  # the region names no partner for this purpose
        consents.append(
            Consent.grant(
                client_ref=client_ref,
                organisation_id=organisation_id,
                partner_organisation_id=partner,
                purpose=purpose,
                given_by=submission.consent.given_by,
                granted_at=submission.consent.granted_at,
            )
        )
    # The referral's own consent: the one that lets the referrer hear back, else the first.
    main = next(
        (c for c in consents if c.purpose is ConsentPurpose.REFERRAL_FEEDBACK),
        consents[0] if consents else None,
    )
    referral = Referral.receive(
        client_ref=client_ref,
        referrer=submission.referrer,
        topic=submission.topic,
        urgency=submission.urgency,
        postcode_area=details.postcode_area,
        consent_id=main.id if main else new_id("cns"),
        feedback_allowed=ConsentPurpose.REFERRAL_FEEDBACK in submission.consent.purposes,
        region=region,
        duplicate_of=original.id if original else None,
        at=now,
        referral_id=referral_id,
    )
    if original is not None:
        referral.link_to(original, now)
    else:
        # The place is claimed outside the transaction (see ketenbus.intake.caseloads): concurrent
        # referrals never write the same document inside their transactions. Whoever runs
        # this gives the place back if the transaction does not commit (`claimed_for`).
        organisation = await tx.claim_place(organisation_id, referral.id)
        position = 0  # only a referral that waits has a place on the list
        if not organisation.has_room:
            # Two counts over the waiting list: paid only by a referral that joins it. Read in
            # this transaction's snapshot: two referrals joining at the same instant may be
            # told the same position; the order of admission (crisis first, then the longest
            # wait) does not depend on it.
            crises, everyone = await tx.referrals.waiting_counts(organisation_id)
            position = waitlist_position(referral.crisis, crises, everyone)
        triage(referral, organisation, position, now)
    # The contact card goes to notifications only with the `reminders` consent among these
    # (record_consent shares it, on the contacts topic).
    for consent in consents:
        consent.referral_id = referral.id
        await record_consent(tx, consent, now)
    await tx.referrals.add(referral, idempotency_key, fingerprint)
    return referral


@dataclass(frozen=True)
class Arriving:
    """One referral of a batch as its read-ahead sees it, before it is received."""

    referral_id: str
    # (the referring organisation, its Idempotency-Key); None: sent without one.
    key: tuple[str, str] | None
    # None: the details cannot be opened (a partner's seal), and the referral is refused.
    details: PersonalDetails | None
    consented: bool


async def read_ahead(tx: IntakeTransaction, regions: RegionTable, batch: list[Arriving]) -> None:
    """A batch of referrals (a partner's on Kafka, or several at the front door at once): one
    query for which keys were used, one for which persons intake knows, instead of two per
    referral; then one round trip for the places of those that will claim one."""
    await tx.referrals.read_ahead_keys(a.key for a in batch if a.key is not None)
    await tx.clients.read_ahead(a.details for a in batch if a.details is not None)
    await tx.claim_places_ahead(_claims_ahead(tx, regions, batch))


def _claims_ahead(
    tx: IntakeTransaction, regions: RegionTable, batch: list[Arriving]
) -> list[tuple[str, str]]:
    """(organisation, referral) for each referral of the batch that `receive` will claim a
    place for: one that can be taken, under a key not used before, of a person intake does
    not know (so there is no open referral to link it to), the first of its key and of its
    person in the batch, in a region that is served. A place claimed for a referral that
    does not take it would stay held until `reconcile`: when in doubt, none is claimed ahead
    (`receive` claims as before)."""
    claims: list[tuple[str, str]] = []
    keys: set[tuple[str, str]] = set()
    persons: set[str] = set()
    for arriving in batch:
        key, details = arriving.key, arriving.details
        if details is None or not arriving.consented or key in keys:
            continue
        if key is not None:
            keys.add(key)
        person = tx.clients.person(details)
        if person in persons:
            continue
        persons.add(person)
        region = regions.route(details.postcode_area)
        if (
            region is not None
            and (key is None or tx.referrals.unused_as_read_ahead(*key))
            and tx.clients.unknown_as_read_ahead(person)
        ):
            claims.append((region.organisation_id, arriving.referral_id))
    return claims


@asynccontextmanager
async def claimed_for(
    caseloads: Caseloads, referral_id: str, recheck: Callable[[str], Awaitable[None]]
) -> AsyncIterator[None]:
    """Around the whole command (its retries included): if it fails, a place claimed for the
    referral goes back, unless the referral did commit as accepted. A place given back may
    have been refused meanwhile to a referral now waiting (the same Idempotency-Key sent to
    two replicas at once claims twice, and one loses), so the waiting list is looked at again."""
    try:
        yield
    except Exception:
        for organisation_id in await caseloads.release_unless_accepted(referral_id):
            await recheck(organisation_id)
        raise
    except BaseException:
        await caseloads.release_unless_accepted(referral_id)
        raise


async def share_contact_for_notifications(
    tx: IntakeTransaction, client_ref: str, organisation_id: str, at: datetime
) -> None:
    """Only under a `reminders` consent: notifications needs the address for nothing else.
    On the compacted contacts topic, not with the consent on the clients topic: the card may
    reach notifications before the consent does (notifications keeps it; it sends nothing
    without the consent), and the tombstone that takes it back follows it on its partition."""
    details = await tx.clients.details(client_ref)
    contact = await tx.clients.contact_for_notifications(client_ref)
    if contact is None or details is None:
        return
    tx.publish(
        ClientContactShared(
            client_ref=client_ref,
            organisation_id=organisation_id,
            language=details.language,
            preferred_channel=details.preferred_channel,
            contact=contact,
            shared_at=at,
        )
    )


def take_back_contact_from_notifications(tx: IntakeTransaction, client_ref: str) -> None:
    """The card notifications holds is taken back by a tombstone under its key on the
    compacted contacts topic: notifications forgets the card when it reads it, and the next
    compaction removes the card from the topic. At an erasure, and when the client's last
    `reminders` consent is withdrawn."""
    tx.tombstone(CONTACTS, contact_card_key(client_ref, NOTIFICATIONS_CARD))


async def reminders_withdrawn(tx: IntakeTransaction, client_ref: str) -> None:
    """A consent to reminders withdrawn: with none left in force, the card is taken back
    (another one in force keeps it shared)."""
    consents = await tx.consents.of_client(client_ref)
    if not any(c.active and c.purpose is ConsentPurpose.REMINDERS for c in consents):
        take_back_contact_from_notifications(tx, client_ref)


async def record_consent(tx: IntakeTransaction, consent: Consent, at: datetime) -> None:
    """Keep the consent; for reminders, share the contact card with notifications; for debt
    counselling, seal the contact for that partner at once, so the hand-off needs nothing
    more from intake. No other purpose lets contact details leave intake."""
    await tx.consents.add(consent)
    if consent.purpose is ConsentPurpose.REMINDERS:
        await share_contact_for_notifications(tx, consent.client_ref, consent.organisation_id, at)
    elif consent.purpose is ConsentPurpose.DEBT_COUNSELLING:
        await seal_card_for_partner(tx, consent, at)


async def seal_card_for_partner(tx: IntakeTransaction, consent: Consent, at: datetime) -> bool:
    """The card for the debt-counselling partner, under its consent, on the compacted contacts
    topic keyed by client and partner (a later card of the same partner replaces it there).
    Trajectory keeps it for the hand-off. False when nothing could be sealed."""
    partner_key = tx.clients.keys.partner(consent.partner_organisation_id)
    if partner_key is None:
        return False  # no key shared with this partner: nothing can be sealed for it
    contact = await tx.clients.contact_for_partner(consent.client_ref, partner_key)
    if contact is None:
        return False
    tx.publish(
        PartnerContactSealed(
            client_ref=consent.client_ref,
            organisation_id=consent.organisation_id,
            partner_organisation_id=consent.partner_organisation_id,
            consent_id=consent.id,
            purpose=consent.purpose,
            contact=contact,
            sealed_at=at,
        )
    )
    return True


def take_back_contact_from_partner(
    tx: IntakeTransaction, client_ref: str, partner_organisation_id: str
) -> None:
    """The card sealed for a partner is taken back by a tombstone under its key: trajectory
    forgets it when it reads it, and the next compaction removes it from the topic. What the
    partner received at a hand-off is beyond the chain (docs/partners.md)."""
    tx.tombstone(CONTACTS, contact_card_key(client_ref, partner_card(partner_organisation_id)))


async def debt_counselling_withdrawn(tx: IntakeTransaction, consent: Consent, at: datetime) -> None:
    """A consent to debt counselling withdrawn: the partner's card is taken back, unless
    another consent of the client to that partner is still in force (a second referral brings
    one): then the card is sealed again under that one, which replaces the withdrawn one's on
    the topic, so no card stands under a withdrawn consent."""
    remaining = await tx.consents.active(
        consent.client_ref, consent.partner_organisation_id, ConsentPurpose.DEBT_COUNSELLING
    )
    if remaining is None or not await seal_card_for_partner(tx, remaining, at):
        take_back_contact_from_partner(tx, consent.client_ref, consent.partner_organisation_id)


async def take_back_every_contact(tx: IntakeTransaction, client_ref: str) -> None:
    """At an erasure: notifications' card, and the card of every partner the client ever
    consented to debt counselling with (a tombstone of a key without a card is harmless)."""
    take_back_contact_from_notifications(tx, client_ref)
    partners = {
        c.partner_organisation_id
        for c in await tx.consents.of_client(client_ref)
        if c.purpose is ConsentPurpose.DEBT_COUNSELLING
    }
    for partner in sorted(partners):
        take_back_contact_from_partner(tx, client_ref, partner)
