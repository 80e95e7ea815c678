"""What intake does when events arrive: partners' referrals, and the trajectory's milestones
that close the loop, free a place and let the next one in from the waiting list."""

from __future__ import annotations

import uuid
from datetime import datetime

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import FirstContactMade, ReferralSubmitted, TrajectoryClosed
from ketenbus.intake import reception
from ketenbus.intake.domain import NotFound, Referral, ReferralState, Referrer
from ketenbus.intake.partners import ReferralRefused, open_client_details, refuse_unless
from ketenbus.intake.personal import PersonalDetails
from ketenbus.intake.regions import RegionTable
from ketenbus.intake.settings import IntakeSettings
from ketenbus.intake.store import ConcurrentChange, IntakeTransaction
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.failures import is_transient, retrying
from ketenbus.kit.logs import get_logger
from ketenbus.kit.uow import EventUnitOfWork, UnitOfWork

log = get_logger(__name__)
handlers = EventHandlers("intake")


@handlers.on(ReferralSubmitted, topics=IntakeSettings.partner_inbound_topics)
async def receive_partner_referral(
    event: Envelope[ReferralSubmitted],
    uow: EventUnitOfWork[IntakeTransaction],
    regions: RegionTable,
) -> None:
    submitted = event.data
    partner = submitted.partner_organisation_id
    async with uow.handling(event) as tx:
        # Opening the seal with this partner's key is also the proof that this partner sent it.
        details = open_client_details(submitted.client, tx.clients.keys.partner(partner), partner)
        refuse_unless(bool(submitted.consent.purposes), "the consent names no purpose")
        idempotency_key = _idempotency_key(submitted)
        if await tx.referrals.by_idempotency_key(partner, idempotency_key):
            return
        await reception.receive(
            tx,
            reception.Submission(
                referrer=Referrer(submitted.referrer_type, partner, submitted.referrer_reference),
                topic=submitted.topic,
                urgency=submitted.urgency,
                client=details,
                consent=reception.ConsentGiven(
                    submitted.consent.given_by,
                    submitted.consent.purposes,
                    submitted.consent.granted_at,
                ),
            ),
            regions,
            idempotency_key=idempotency_key,
            referral_id=_referral_id(event),
        )


@handlers.read_ahead(ReferralSubmitted)
async def partner_referrals_ahead(
    events: list[Envelope[ReferralSubmitted]], tx: IntakeTransaction, regions: RegionTable
) -> None:
    """A batch of partners' referrals: one query for which were received already, one for
    which of their persons intake knows, instead of two per referral; then one round trip
    for the places of those that will claim one, instead of one each."""
    opened = [(event, _opened(event.data, tx)) for event in events]
    await tx.referrals.read_ahead_keys(
        (event.data.partner_organisation_id, _idempotency_key(event.data)) for event, _ in opened
    )
    await tx.clients.read_ahead(details for _, details in opened if details is not None)
    await tx.claim_places_ahead(_claims_ahead(tx, opened, regions))


def _opened(submitted: ReferralSubmitted, tx: IntakeTransaction) -> PersonalDetails | None:
    """The client's details, or None when they cannot be opened: its handler refuses it."""
    partner = submitted.partner_organisation_id
    try:
        return open_client_details(submitted.client, tx.clients.keys.partner(partner), partner)
    except ReferralRefused:
        return None


def _claims_ahead(
    tx: IntakeTransaction,
    opened: list[tuple[Envelope[ReferralSubmitted], PersonalDetails | None]],
    regions: RegionTable,
) -> list[tuple[str, str]]:
    """(organisation, referral) for each referral of the batch that its handler will claim
    a place for: one that can be taken, under a key not used before, of a person intake does
    not know (so there is no open referral to link it to), the first of its key and of its
    person in the batch, in a region that is served. A place claimed for a referral that
    does not take it would stay held until `reconcile`: when in doubt, none is claimed ahead
    (its handler claims as before)."""
    claims: list[tuple[str, str]] = []
    keys: set[tuple[str, str]] = set()
    persons: set[str] = set()
    for event, details in opened:
        submitted = event.data
        key = (submitted.partner_organisation_id, _idempotency_key(submitted))
        if details is None or not submitted.consent.purposes or key in keys:
            continue
        keys.add(key)
        person = tx.clients.person(details)
        if person in persons:
            continue
        persons.add(person)
        region = regions.route(details.postcode_area)
        if (
            region is not None
            and tx.referrals.unused_as_read_ahead(*key)
            and tx.clients.unknown_as_read_ahead(person)
        ):
            claims.append((region.organisation_id, _referral_id(event)))
    return claims


def _referral_id(event: Envelope[ReferralSubmitted]) -> str:
    """The same event makes the same referral id on redelivery: a place claimed by an
    attempt that did not commit is found again, not claimed twice."""
    return f"ref_{uuid.uuid5(uuid.NAMESPACE_URL, event.id).hex}"


def _idempotency_key(submitted: ReferralSubmitted) -> str:
    """The partner's own reference makes a resent referral the same referral."""
    return f"kafka:{submitted.referrer_reference}"


@handlers.on(FirstContactMade)
async def tell_first_contact(
    event: Envelope[FirstContactMade], uow: EventUnitOfWork[IntakeTransaction]
) -> None:
    async with uow.handling(event) as tx:
        referral = await _referral(tx, event.data.referral_id)
        for each in [referral, *await tx.referrals.linked_to(referral.id)]:
            each.first_contact(event.data.occurred_at)
            await tx.referrals.save(each)


@handlers.on(TrajectoryClosed)
async def close_referral(
    event: Envelope[TrajectoryClosed], uow: EventUnitOfWork[IntakeTransaction]
) -> None:
    """The loop closes for the referrer, and the place goes to the first one waiting."""
    async with uow.handling(event) as tx:
        referral = await _referral(tx, event.data.referral_id)
        if not referral.close(event.data.closed_at):
            return
        await tx.referrals.save(referral)
        for linked in await tx.referrals.linked_to(referral.id):
            linked.close(event.data.closed_at)
            await tx.referrals.save(linked)
        assert referral.organisation_id is not None
        # Given back outside the transaction (see ketenbus.intake.caseloads), by the
        # referral's id: a redelivered close gives back nothing twice.
        await tx.caseloads.release(referral.organisation_id, referral.id)
        await let_in_from_waitlist(tx, referral.organisation_id, tx.clock.now())


async def let_in_from_waitlist(tx: IntakeTransaction, organisation_id: str, at: datetime) -> None:
    """While a place is free, the first one waiting (crisis first) takes it.

    The list is read as committed now, not in this transaction's snapshot: a referral that
    joined the list after the snapshot was taken, and found every place held, must still be
    let in by the place given back here. One the snapshot cannot see is a concurrent change:
    the transaction is retried with a fresh snapshot (a consumer redelivers; nobody waits)."""
    async for referral_id in tx.referrals.waiting_as_committed(organisation_id):
        waiting = await tx.referrals.get(referral_id)
        if waiting is None:
            raise ConcurrentChange(referral_id)
        if waiting.state is not ReferralState.WAITLISTED:
            continue  # let in already, earlier in this transaction's batch
        if not (await tx.caseloads.claim(organisation_id, waiting.id)).has_room:
            return
        waiting.admit(at)
        await tx.referrals.save(waiting)


async def recheck_waiting_list(uow: UnitOfWork[IntakeTransaction], organisation_id: str) -> None:
    """After a front door waitlisted a referral: every place was held when it looked; one may
    have been given back since, by a close whose transaction could not yet see this referral
    waiting. Looking once more after the commit leaves no one waiting beside a free place.
    The referral is made whatever happens here, so a failure is left to the next close."""

    async def let_in() -> None:
        async with uow.command() as tx:
            await let_in_from_waitlist(tx, organisation_id, tx.clock.now())

    try:
        await retrying(let_in)
    except Exception as error:
        if not is_transient(error):
            raise
        log.warning("waiting_list_not_rechecked", organisation_id=organisation_id)


async def _referral(tx: IntakeTransaction, referral_id: str) -> Referral:
    referral = await tx.referrals.get(referral_id)
    if referral is None:
        raise NotFound(f"no referral {referral_id}")
    return referral
