"""What intake does when events arrive: partners' referrals, and the trajectory's milestones
that close the loop, free a place and let the next one in from the waiting list."""

from __future__ import annotations

import uuid

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import FirstContactMade, ReferralSubmitted, TrajectoryClosed
from ketenbus.intake import reception
from ketenbus.intake.domain import NotFound, Referral, Referrer
from ketenbus.intake.partners import ReferralRefused, open_client_details, refuse_unless
from ketenbus.intake.personal import PersonalDetails
from ketenbus.intake.regions import RegionTable
from ketenbus.intake.settings import IntakeSettings
from ketenbus.intake.store import IntakeTransaction
from ketenbus.intake.waiting_list import let_in_from_waitlist
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.uow import EventUnitOfWork

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
        # Opening the seal with this partner's key is also the proof that this partner sent it
        # (its batch's read-ahead opened it so, when it could).
        details = tx.clients.opened_ahead(event.id)
        if details is None:
            details = open_client_details(
                submitted.client, tx.clients.keys.partner(partner), partner
            )
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
    """A batch of partners' referrals, read ahead as `reception.read_ahead` says. The client
    details it opens are kept for the handlers: a seal is opened once (decrypted and its
    details validated, the e-mail address most of it), not once here and again there."""
    await reception.read_ahead(
        tx,
        regions,
        [
            reception.Arriving(
                referral_id=_referral_id(event),
                key=(event.data.partner_organisation_id, _idempotency_key(event.data)),
                details=_opened(event, tx),
                consented=bool(event.data.consent.purposes),
            )
            for event in events
        ],
    )


def _opened(event: Envelope[ReferralSubmitted], tx: IntakeTransaction) -> PersonalDetails | None:
    """The client's details, or None when they cannot be opened: its handler refuses it."""
    partner = event.data.partner_organisation_id
    try:
        details = open_client_details(event.data.client, tx.clients.keys.partner(partner), partner)
    except ReferralRefused:
        return None
    tx.clients.keep_opened(event.id, details)
    return details


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


async def _referral(tx: IntakeTransaction, referral_id: str) -> Referral:
    referral = await tx.referrals.get(referral_id)
    if referral is None:
        raise NotFound(f"no referral {referral_id}")
    return referral
