"""The front door: referrals in and their closed-loop status out, for referring partners;
consent and erasure, for the organisation that helps the client."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeAlias

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ketenbus.contracts.events import ClientErasureRequested, SignalDeletionReason, Urgency
from ketenbus.contracts.values import (
    ConsentGiver,
    ConsentPurpose,
    DeclineReason,
    ReferralStatus,
    ReferralTopic,
    ReferrerType,
    new_id,
)
from ketenbus.intake import reception
from ketenbus.intake.bootstrap import IntakeDependencies
from ketenbus.intake.domain import Consent, NotFound, Referral, ReferralState, Referrer
from ketenbus.intake.front_desk import Received
from ketenbus.intake.idempotency import KeyedRequest, key_header, replay_responses
from ketenbus.intake.personal import PersonalDetails
from ketenbus.intake.store import IntakeTransaction
from ketenbus.intake.waiting_list import recheck_waiting_list
from ketenbus.kit.auth import Caller, requires
from ketenbus.kit.errors import DomainError
from ketenbus.kit.failures import retrying
from ketenbus.kit.logs import bound, get_logger
from ketenbus.kit.ratelimit import TOO_MANY, RateLimit, limited
from ketenbus.kit.uow import UnitOfWork
from ketenbus.kit.web import service_dependencies

log = get_logger(__name__)
router = APIRouter(prefix="/v1")

Deps = Annotated[IntakeDependencies, Depends(service_dependencies)]
Uow: TypeAlias = UnitOfWork[IntakeTransaction]


async def _uow(deps: Deps) -> Uow:
    return deps.uow


# The partner front door is rate-limited per organisation (settings REFERRAL_RATE_PER_MINUTE,
# REFERRAL_BURST, REFERRAL_STATUS_RATE_PER_MINUTE, REFERRAL_STATUS_BURST; the bootstrap makes
# them). Every dependency here is async: FastAPI runs a plain `def` one in a worker thread.
async def _referral_limit(deps: Deps) -> RateLimit:
    return deps.referral_limit


async def _status_limit(deps: Deps) -> RateLimit:
    return deps.status_limit


UowDep = Annotated[Uow, Depends(_uow)]
Submitter = Annotated[
    Caller, Depends(limited(requires("referrals:write"), _referral_limit, "referrals"))
]
StatusReader = Annotated[
    Caller, Depends(limited(requires("referrals:read"), _status_limit, "status requests"))
]
ClientPath = Annotated[str, Path(pattern=r"^cl_[0-9a-f]{32}$")]
ConsentPath = Annotated[str, Path(pattern=r"^cns_[0-9a-f]{32}$")]

IdempotencyKey = Annotated[str | None, key_header("referral")]


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    given_by: ConsentGiver = ConsentGiver.CLIENT
    purposes: list[ConsentPurpose] = Field(
        default=[ConsentPurpose.REFERRAL_FEEDBACK],
        min_length=1,
        description="referral_feedback: you hear where the referral stands; debt_counselling: "
        "the region's debt-counselling partner may be asked to help; reminders: the "
        "organisation may send reminders.",
    )
    granted_at: AwareDatetime


class ReferralIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "referrer_type": "gp",
                    "referrer_reference": "HDL-2026-0142",
                    "topic": "psychosocial",
                    "urgency": {"threatened_eviction": False, "disconnection": False},
                    "client": {
                        "name": "Sanne de Vries",
                        "date_of_birth": "1988-04-12",
                        "postcode": "3512 JE",
                        "phone": "06-12345678",
                        "email": "sanne.devries@example.org",
                        "language": "nl",
                        "preferred_channel": "email",
                    },
                    "consent": {
                        "given_by": "client",
                        "purposes": ["referral_feedback"],
                        "granted_at": "2026-03-02T09:10:00+01:00",
                    },
                }
            ]
        },
    )

    referrer_type: ReferrerType
    referrer_reference: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:/-]+$",
        description="Your own reference, returned in every status update. No personal data.",
    )
    topic: ReferralTopic
    urgency: Urgency = Urgency()
    client: PersonalDetails
    consent: ConsentIn


class ReferralStatusOut(BaseModel):
    referral_id: str
    referrer_reference: str | None
    status: ReferralStatus
    reason: DeclineReason | None = None
    redirect: str | None = None
    changed_at: datetime | None


class ConsentGrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_organisation_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    purpose: ConsentPurpose
    given_by: ConsentGiver = ConsentGiver.CLIENT
    granted_at: AwareDatetime


class ConsentOut(BaseModel):
    # Filled from the consent by attribute name; only the id is known by another name.
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    consent_id: str = Field(validation_alias="id")
    partner_organisation_id: str
    purpose: ConsentPurpose
    given_by: ConsentGiver
    granted_at: datetime
    withdrawn_at: datetime | None

    @classmethod
    def of(cls, consent: Consent) -> ConsentOut:
        return cls.model_validate(consent)


class ErasureOut(BaseModel):
    client_ref: str
    erased_at: datetime


def _status_of(referral: Referral) -> ReferralStatusOut:
    return ReferralStatusOut(
        referral_id=referral.id,
        referrer_reference=referral.referrer.reference,
        status=referral.loop_status,
        reason=referral.loop_reason,
        redirect=referral.loop_redirect,
        changed_at=referral.loop_changed_at,
    )


@router.post(
    "/referrals",
    tags=["referrals"],
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralStatusOut,
    responses={**replay_responses("referral"), **TOO_MANY},
)
async def submit_referral(
    body: ReferralIn,
    response: Response,
    caller: Submitter,
    deps: Deps,
    idempotency_key: IdempotencyKey = None,
) -> ReferralStatusOut:
    """Refer a resident, with their consent. The answer says where the referral stands:
    received and accepted, waitlisted, or declined with a reason and a redirect."""
    referral, _ = await refer(body, caller, deps, idempotency_key, response)
    return _status_of(referral)


async def refer(
    body: ReferralIn,
    caller: Caller,
    deps: IntakeDependencies,
    idempotency_key: str | None,
    response: Response,
) -> tuple[Referral, bool]:
    """The referral `body` received once per Idempotency-Key, whichever door it came in by
    (this one, or the FHIR door in fhir_api): the referral, and True if it was made before."""
    uow = deps.uow
    request = KeyedRequest.of(body, idempotency_key, deps.keys.pseudonym, "referral")
    received = Received(
        reception.Submission(
            referrer=Referrer(body.referrer_type, caller.organisation_id, body.referrer_reference),
            topic=body.topic,
            urgency=body.urgency,
            client=body.client,
            consent=reception.ConsentGiven(
                body.consent.given_by,
                tuple(dict.fromkeys(body.consent.purposes)),
                body.consent.granted_at,
            ),
        ),
        idempotency_key,
        request.request_print,
        # One id for every attempt: a retried transaction finds the place it claimed before.
        referral_id=new_id("ref"),
        correlation_id=bound("correlation_id"),
    )

    async def receive() -> Referral:
        async with uow.command() as tx:
            return await received.receive_in(tx, deps.regions)

    async def receive_claimed() -> Referral:
        async with reception.claimed_for(
            deps.caseloads, received.referral_id, lambda freed: recheck_waiting_list(uow, freed)
        ):
            return await retrying(receive)

    async def receive_alone() -> tuple[Referral, bool]:
        return await request.made_once(
            uow,
            response,
            lambda tx, key: tx.referrals.by_idempotency_key(caller.organisation_id, key),
            receive_claimed,
        )

    # With others at the same moment, in one transaction; alone when the door is quiet, or
    # when its key was used before (a replay, or a refusal: made_once answers those).
    referral, replayed = await deps.front_desk.submit(received, alone=receive_alone)
    if replayed:
        return referral, True
    if referral.state is ReferralState.WAITLISTED and referral.organisation_id is not None:
        await recheck_waiting_list(uow, referral.organisation_id)
    return referral, False


async def referral_of(uow: Uow, referral_id: str, caller: Caller) -> Referral | None:
    """The referral, for the organisation that made it; None for anyone else: another
    organisation's referral is reported as absent, so not even its existence leaks."""
    async with uow.reading() as tx:
        referral = await tx.referrals.get(referral_id)
    if referral is None or referral.referrer.organisation_id != caller.organisation_id:
        return None
    return referral


@router.get(
    "/referrals/{referral_id}/status",
    tags=["referrals"],
    response_model=ReferralStatusOut,
    responses=TOO_MANY,
)
async def referral_status(
    referral_id: Annotated[str, Path(pattern=r"^ref_[0-9a-f]{32}$")],
    caller: StatusReader,
    uow: UowDep,
) -> ReferralStatusOut:
    """Where a referral stands, for the organisation that made it and no one else."""
    referral = await referral_of(uow, referral_id, caller)
    if referral is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such referral for your organisation")
    return _status_of(referral)


async def _own_client(tx: IntakeTransaction, client_ref: str, caller: Caller) -> None:
    if await tx.clients.organisation_of(client_ref) != caller.organisation_id:
        raise NotFound(f"no client {client_ref} at your organisation")


@router.get("/clients/{client_ref}/consents", tags=["clients"], response_model=list[ConsentOut])
async def consents(
    client_ref: ClientPath,
    caller: Annotated[Caller, Depends(requires("clients:read"))],
    uow: UowDep,
) -> list[ConsentOut]:
    """Every consent the client gave, and whether it still holds."""
    async with uow.reading() as tx:
        await _own_client(tx, client_ref, caller)
        return [ConsentOut.of(c) for c in await tx.consents.of_client(client_ref)]


@router.post(
    "/clients/{client_ref}/consents",
    tags=["clients"],
    status_code=status.HTTP_201_CREATED,
    response_model=ConsentOut,
)
async def grant_consent(
    client_ref: ClientPath,
    body: ConsentGrantIn,
    caller: Annotated[Caller, Depends(requires("clients:write"))],
    uow: UowDep,
) -> ConsentOut:
    """Record a consent the client gave, e.g. to be handed to a debt-counselling partner."""
    return await retrying(lambda: _grant(client_ref, body, caller, uow))


async def _grant(client_ref: str, body: ConsentGrantIn, caller: Caller, uow: Uow) -> ConsentOut:
    async with uow.command() as tx:
        await _own_client(tx, client_ref, caller)
        if await tx.consents.active(client_ref, body.partner_organisation_id, body.purpose):
            raise DomainError(
                f"the client already consented to {body.purpose} with "
                f"{body.partner_organisation_id}"
            )
        consent = Consent.grant(
            client_ref=client_ref,
            organisation_id=caller.organisation_id,
            partner_organisation_id=body.partner_organisation_id,
            purpose=body.purpose,
            given_by=body.given_by,
            granted_at=body.granted_at,
        )
        await reception.record_consent(tx, consent, tx.clock.now())
    return ConsentOut.of(consent)


@router.post(
    "/clients/{client_ref}/consents/{consent_id}/withdrawal",
    tags=["clients"],
    response_model=ConsentOut,
)
async def withdraw_consent(
    client_ref: ClientPath,
    consent_id: ConsentPath,
    caller: Annotated[Caller, Depends(requires("clients:write"))],
    uow: UowDep,
) -> ConsentOut:
    """The client takes a consent back: nothing more is shared with that partner for it."""
    return await retrying(lambda: _withdraw(client_ref, consent_id, caller, uow))


async def _withdraw(client_ref: str, consent_id: str, caller: Caller, uow: Uow) -> ConsentOut:
    async with uow.command() as tx:
        await _own_client(tx, client_ref, caller)
        consent = await tx.consents.get(consent_id)
        if consent is None or consent.client_ref != client_ref:
            raise NotFound(f"no consent {consent_id} for client {client_ref}")
        now = tx.clock.now()
        consent.withdraw(now)
        await tx.consents.save(consent)
        if consent.purpose is ConsentPurpose.REMINDERS:
            await reception.reminders_withdrawn(tx, client_ref)
        if consent.purpose is ConsentPurpose.DEBT_COUNSELLING:
            await reception.debt_counselling_withdrawn(tx, consent, now)
        if consent.purpose is ConsentPurpose.REFERRAL_FEEDBACK:
            for referral in await tx.referrals.of_client(client_ref):
                if referral.referrer.organisation_id == consent.partner_organisation_id:
                    referral.stop_feedback()
                    await tx.referrals.save(referral)
    return ConsentOut.of(consent)


@router.post(
    "/clients/{client_ref}/erasure",
    tags=["clients"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ErasureOut,
)
async def erase_client(
    client_ref: ClientPath,
    caller: Annotated[Caller, Depends(requires("clients:write"))],
    uow: UowDep,
) -> ErasureOut:
    """The client asks to be forgotten: their key is shredded here at once, and every service
    is told to forget them (accepted: the others follow through the bus)."""
    return await retrying(lambda: _erase(client_ref, caller, uow))


async def _forget_signal_of(tx: IntakeTransaction, referral: Referral, at: datetime) -> None:
    """A referral made from an early-warning signal names the signal as its reference: the
    signal's own copy of the person goes with the client (docs/signals.md)."""
    if referral.referrer.type is not ReferrerType.EARLY_WARNING or not referral.referrer.reference:
        return
    signal = await tx.signals.get(referral.referrer.reference)
    if signal is None or signal.referral_id != referral.id:
        return  # deleted already, or a reference that is not a signal of ours
    signal.delete_data(SignalDeletionReason.ERASURE_REQUESTED, at)
    await tx.signals.delete(signal)


async def _erase(client_ref: str, caller: Caller, uow: Uow) -> ErasureOut:
    async with uow.command() as tx:
        await _own_client(tx, client_ref, caller)
        now = tx.clock.now()
        await tx.clients.erase(client_ref, now)
        await reception.take_back_every_contact(tx, client_ref)
        for referral in await tx.referrals.of_client(client_ref):
            referral.withdraw_from_waitlist(now)
            await tx.referrals.save(referral)
            await _forget_signal_of(tx, referral, now)
        tx.publish(
            ClientErasureRequested(
                client_ref=client_ref, organisation_id=caller.organisation_id, requested_at=now
            )
        )
    return ErasureOut(client_ref=client_ref, erased_at=now)
