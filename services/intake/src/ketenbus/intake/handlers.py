"""What intake does when events arrive: partners' referrals, and the trajectory's milestones
that close the loop, free a place and let the next one in from the waiting list."""

from __future__ import annotations

from datetime import datetime

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import FirstContactMade, ReferralSubmitted, TrajectoryClosed
from ketenbus.intake import reception
from ketenbus.intake.domain import NotFound, Organisation, Referral, Referrer
from ketenbus.intake.partners import open_client_details, refuse_unless
from ketenbus.intake.regions import RegionTable
from ketenbus.intake.store import IntakeTransaction
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.uow import EventUnitOfWork

handlers = EventHandlers("intake")


# The partners' inbound topics are known only from the settings; the app adds them at start-up.
@handlers.on(ReferralSubmitted)
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
        # The partner's own reference makes a resent referral the same referral.
        idempotency_key = f"kafka:{submitted.referrer_reference}"
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
        )


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
        organisation = await tx.organisations.get(referral.organisation_id)
        organisation.free_place()
        await let_in_from_waitlist(tx, organisation, tx.clock.now())
        await tx.organisations.save(organisation)


async def let_in_from_waitlist(
    tx: IntakeTransaction, organisation: Organisation, at: datetime
) -> None:
    while organisation.has_room:
        waiting = await tx.referrals.next_waiting(organisation.id)
        if waiting is None:
            return
        organisation.take_place()
        waiting.admit(at)
        await tx.referrals.save(waiting)


async def _referral(tx: IntakeTransaction, referral_id: str) -> Referral:
    referral = await tx.referrals.get(referral_id)
    if referral is None:
        raise NotFound(f"no referral {referral_id}")
    return referral
