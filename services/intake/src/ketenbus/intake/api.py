"""The partner front door: referrals in, and the closed-loop status out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError

from ketenbus.contracts.events import ClientContactShared, Urgency
from ketenbus.contracts.values import (
    ConsentGiver,
    DeclineReason,
    ReferralStatus,
    ReferralTopic,
    ReferrerType,
    new_id,
)
from ketenbus.intake.domain import Referral, Referrer
from ketenbus.intake.personal import PersonalDetails
from ketenbus.intake.regions import RegionTable
from ketenbus.kit.auth import Caller, requires
from ketenbus.kit.uow import UnitOfWork

router = APIRouter(prefix="/v1", tags=["referrals"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Send the same key again to get the same referral instead of a second one.",
    ),
]


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    given_by: ConsentGiver = ConsentGiver.CLIENT
    granted_at: AwareDatetime


class ReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


def _uow(request: Request) -> UnitOfWork:  # type: ignore[type-arg]
    return request.app.state.runtime.uow


def _regions(request: Request) -> RegionTable:
    return request.app.state.runtime.dependencies["regions"]


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
    status_code=status.HTTP_201_CREATED,
    response_model=ReferralStatusOut,
    responses={200: {"description": "Seen before under this Idempotency-Key: the same referral"}},
)
async def submit_referral(
    body: ReferralIn,
    response: Response,
    caller: Annotated[Caller, Depends(requires("referrals:write"))],
    uow: Annotated[UnitOfWork, Depends(_uow)],  # type: ignore[type-arg]
    regions: Annotated[RegionTable, Depends(_regions)],
    idempotency_key: IdempotencyKey = None,
) -> ReferralStatusOut:
    """Refer a resident, with their consent. The answer says where the referral stands."""
    if idempotency_key is not None:
        async with uow.reading() as tx:
            earlier = await tx.referrals.by_idempotency_key(caller.organisation_id, idempotency_key)
        if earlier is not None:
            response.status_code = status.HTTP_200_OK
            return _status_of(earlier)
    try:
        referral = await _receive(body, caller, uow, regions, idempotency_key)
    except DuplicateKeyError:
        # The same key arrived twice at once; the other request made the referral.
        async with uow.reading() as tx:
            earlier = await tx.referrals.by_idempotency_key(
                caller.organisation_id, idempotency_key or ""
            )
        if earlier is None:
            raise
        response.status_code = status.HTTP_200_OK
        return _status_of(earlier)
    return _status_of(referral)


async def _receive(
    body: ReferralIn,
    caller: Caller,
    uow: UnitOfWork,  # type: ignore[type-arg]
    regions: RegionTable,
    idempotency_key: str | None,
) -> Referral:
    region = regions.route(body.client.postcode_area)
    async with uow.command() as tx:
        now = tx.clock.now()
        client_ref = (
            await tx.clients.register(body.client, region.organisation_id)
            if region
            else new_id("cl")
        )
        referral = Referral.receive(
            client_ref=client_ref,
            referrer=Referrer(body.referrer_type, caller.organisation_id, body.referrer_reference),
            topic=body.topic,
            urgency=body.urgency,
            postcode_area=body.client.postcode_area,
            consent_given_by=body.consent.given_by,
            region=region,
            at=now,
        )
        if region is not None:
            referral.accept(region, now)
            contact = await tx.clients.contact_for_notifications(client_ref)
            if contact is not None:
                tx.publish(
                    ClientContactShared(
                        client_ref=client_ref,
                        organisation_id=region.organisation_id,
                        language=body.client.language,
                        preferred_channel=body.client.preferred_channel,
                        contact=contact,
                        shared_at=now,
                    )
                )
        await tx.referrals.add(referral, idempotency_key)
    return referral


@router.get("/referrals/{referral_id}/status", response_model=ReferralStatusOut)
async def referral_status(
    referral_id: Annotated[str, Field(pattern=r"^ref_[0-9a-f]{32}$")],
    caller: Annotated[Caller, Depends(requires("referrals:read"))],
    uow: Annotated[UnitOfWork, Depends(_uow)],  # type: ignore[type-arg]
) -> ReferralStatusOut:
    """Where a referral stands, for the organisation that made it and no one else."""
    async with uow.reading() as tx:
        referral = await tx.referrals.get(referral_id)
    # Another organisation's referral is reported as absent: not even its existence leaks.
    if referral is None or referral.referrer.organisation_id != caller.organisation_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such referral for your organisation")
    return _status_of(referral)
