"""What trajectory does when other services' and partners' events arrive."""

from __future__ import annotations

from typing import Any, TypeAlias

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import (
    ClientErasureRequested,
    ConsentGranted,
    ConsentWithdrawn,
    HomeworkSubmitted,
    ModuleCompleted,
    PartnerCompleted,
    PartnerContactSealed,
    PartnerReferralAccepted,
    PartnerReferralDeclined,
    PartnerStatusChanged,
    ReferralAccepted,
    WaitlistExited,
    WithdrawalReason,
)
from ketenbus.contracts.events.intake import is_partner_card
from ketenbus.contracts.topics import CONTACTS
from ketenbus.contracts.values import ConsentPurpose
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.uow import EventUnitOfWork, UnitOfWork
from ketenbus.trajectory.domain import HandOffStatus, NotFound, Trajectory
from ketenbus.trajectory.settings import TrajectorySettings
from ketenbus.trajectory.store import TrajectoryTransaction

handlers = EventHandlers("trajectory")

Uow: TypeAlias = EventUnitOfWork[TrajectoryTransaction]


@handlers.on(ReferralAccepted, WaitlistExited)
async def open_trajectory(event: Envelope[ReferralAccepted | WaitlistExited], uow: Uow) -> None:
    async with uow.handling(event) as tx:
        if await tx.trajectories.by_referral(event.data.referral_id) is not None:
            return  # the same referral, announced again under another event id
        trajectory = Trajectory.open(event.data, at=tx.clock.now())
        await tx.trajectories.add(trajectory)


@handlers.read_ahead(ReferralAccepted, WaitlistExited)
async def trajectories_of_referrals(events: list[Envelope[Any]], tx: TrajectoryTransaction) -> None:
    """Every accepted referral of a batch looks for its trajectory: one query for them all."""
    await tx.trajectories.read_ahead_by_referral(e.data.referral_id for e in events)


@handlers.on(ModuleCompleted)
async def record_module_completed(event: Envelope[ModuleCompleted], uow: Uow) -> None:
    async with uow.handling(event) as tx:
        trajectory = await tx.trajectories.by_enrolment(event.data.enrolment_id)
        if trajectory is None:
            return  # a self-help module the client chose while waiting: not in a trajectory
        trajectory.record_module_completed(event.data.enrolment_id, at=event.data.completed_at)
        await tx.trajectories.save(trajectory)


@handlers.on(HomeworkSubmitted)
async def show_homework_to_worker(event: Envelope[HomeworkSubmitted], uow: Uow) -> None:
    async with uow.handling(event) as tx:
        submitted = event.data
        trajectory = await tx.trajectories.by_enrolment(submitted.enrolment_id)
        if trajectory is None:
            return  # homework in a module the client took up on their own
        trajectory.record_homework(
            submitted.submission_id,
            submitted.enrolment_id,
            submitted.step_id,
            submitted.submitted_at,
        )
        await tx.trajectories.save(trajectory)


@handlers.on(ConsentGranted)
async def keep_consent(event: Envelope[ConsentGranted], uow: Uow) -> None:
    granted = event.data
    if granted.purpose is not ConsentPurpose.DEBT_COUNSELLING:
        return  # only hand-offs need consent here
    async with uow.handling(event) as tx:
        await tx.consents.granted(
            granted.consent_id,
            granted.client_ref,
            granted.partner_organisation_id,
            granted.purpose.value,
        )


@handlers.on(PartnerContactSealed)
async def keep_sealed_contact(event: Envelope[PartnerContactSealed], uow: Uow) -> None:
    """Kept as the contacts topic holds it, the latest per client and partner. It may come
    before its consent (on the clients topic): it is kept, and nothing is handed off without
    that consent in force. A card whose consent was withdrawn already is not kept, and the
    one it replaced on the topic goes too: its tombstone, or a card under a consent still in
    force, follows it."""
    sealed = event.data
    async with uow.handling(event) as tx:
        if await tx.consents.was_withdrawn(sealed.consent_id):
            await tx.consents.forget_card(sealed.key)
            return
        await tx.consents.keep_card(sealed.key, sealed)


@handlers.on_tombstone(CONTACTS)
async def forget_sealed_contact(key: str, uow: UnitOfWork[TrajectoryTransaction]) -> None:
    """Intake took a partner's card back (an erasure, a withdrawn consent to debt
    counselling). Forgetting twice is harmless: a tombstone has no inbox claim."""
    if not is_partner_card(key):
        return  # notifications' card: not ours
    async with uow.command() as tx:
        await tx.consents.forget_card(key)


@handlers.on(ConsentWithdrawn)
async def stop_sharing(event: Envelope[ConsentWithdrawn], uow: Uow) -> None:
    """Nothing more goes to that partner: the card sealed under the consent is dropped (its
    tombstone follows on the contacts topic) and a hand-off under way is withdrawn, so the
    partner stops too."""
    withdrawn = event.data
    if withdrawn.purpose is not ConsentPurpose.DEBT_COUNSELLING:
        return
    async with uow.handling(event) as tx:
        await tx.consents.withdrawn(withdrawn.consent_id, withdrawn.withdrawn_at)
        await tx.consents.forget_cards_of_consent(withdrawn.consent_id)
        for trajectory in await tx.trajectories.of_client(withdrawn.client_ref):
            trajectory.withdraw_partner_referrals(
                withdrawn.partner_organisation_id,
                WithdrawalReason.CONSENT_WITHDRAWN,
                withdrawn.withdrawn_at,
            )
            await tx.trajectories.save(trajectory)


@handlers.on(ClientErasureRequested)
async def forget_client(event: Envelope[ClientErasureRequested], uow: Uow) -> None:
    async with uow.handling(event) as tx:
        await tx.consents.forget_client(event.data.client_ref)
        for trajectory in await tx.trajectories.of_client(event.data.client_ref):
            trajectory.forget(event.data.requested_at)
            await tx.trajectories.save(trajectory)
        # The client's dead letters, on every DLQ of the chain: trajectory purges them
        # (ketenbus.kit.dead_letter_purges), after this transaction, under a lease.
        await tx.dead_letter_purges.request(event.data.client_ref)


PARTNER_ANSWERS = (
    PartnerReferralAccepted,
    PartnerReferralDeclined,
    PartnerStatusChanged,
    PartnerCompleted,
)
PartnerAnswer: TypeAlias = (
    PartnerReferralAccepted | PartnerReferralDeclined | PartnerStatusChanged | PartnerCompleted
)


@handlers.on(*PARTNER_ANSWERS, topics=TrajectorySettings.partner_inbound_topics)
async def record_partner_answer(event: Envelope[PartnerAnswer], uow: Uow) -> None:
    answer = event.data
    reason = None
    match answer:
        case PartnerReferralAccepted():
            status, progress, at = HandOffStatus.ACCEPTED, "accepted", answer.accepted_at
        case PartnerReferralDeclined():
            status, progress, at = HandOffStatus.DECLINED, "declined", answer.declined_at
            reason = answer.reason
        case PartnerStatusChanged():
            status, progress, at = None, answer.status.value, answer.changed_at
        case PartnerCompleted():
            status, progress = HandOffStatus.COMPLETED, answer.outcome.value
            at = answer.completed_at
    async with uow.handling(event) as tx:
        trajectory = await tx.trajectories.by_partner_referral(answer.partner_referral_id)
        if trajectory is None:
            raise NotFound(f"no hand-off {answer.partner_referral_id} was requested")
        trajectory.record_partner_answer(
            answer.partner_referral_id,
            answer.partner_organisation_id,
            status,
            progress,
            at,
            reason=reason,
        )
        await tx.trajectories.save(trajectory)
