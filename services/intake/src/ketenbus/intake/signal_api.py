"""Early-warning signals over HTTP: a creditor sends one in; the serving organisation's
worker reads it, records each outreach attempt and the resident's answer, or erases it.

Why HTTP and not a partner topic: creditors (housing corporations, energy and water
companies, health insurers) send signals from their collection systems, in batches, to many
municipalities; none runs a Kafka client of the chain, and a pair of topics per creditor
would be provisioned for a few calls a day. Should a creditor want a topic, a
`SignalSubmitted` on its inbound topic can come later and call the same `receive_signal`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi import status as http
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ketenbus.contracts.events import SignalDeletionReason, Urgency
from ketenbus.contracts.values import (
    ConsentGiver,
    ConsentPurpose,
    CreditorKind,
    OutreachMethod,
    ReferralTopic,
    ReferrerType,
    new_id,
)
from ketenbus.intake import reception
from ketenbus.intake.api import Deps, UowDep
from ketenbus.intake.domain import NotFound, ReferralState, Referrer
from ketenbus.intake.idempotency import KeyedRequest, key_header, replay_responses
from ketenbus.intake.personal import SignalDetails, SignalResident
from ketenbus.intake.signals import OutreachAttempt, OutreachWindows, Signal, SignalState
from ketenbus.intake.store import IntakeTransaction
from ketenbus.intake.waiting_list import recheck_waiting_list
from ketenbus.kit.auth import Caller, requires
from ketenbus.kit.errors import DomainError
from ketenbus.kit.failures import retrying
from ketenbus.kit.logs import get_logger
from ketenbus.kit.ratelimit import TOO_MANY, RateLimit, limited

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["signals"])


# A creditor's signals share the front door's rate limit (per organisation).
async def _referral_limit(deps: Deps) -> RateLimit:
    return deps.referral_limit


Creditor = Annotated[
    Caller, Depends(limited(requires("signals:submit"), _referral_limit, "signals"))
]
Reader = Annotated[Caller, Depends(requires("signals:read"))]
Worker = Annotated[Caller, Depends(requires("signals:write"))]
SignalPath = Annotated[str, Path(pattern=r"^sig_[0-9a-f]{32}$")]
IdempotencyKey = Annotated[str | None, key_header("signal")]


class OutsideRegion(DomainError):
    status_code = 422  # nothing of the signal is kept: send it to the resident's municipality


class SignalIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "creditor_kind": "energy",
                    "arrears_amount": "412.80",
                    "signal_date": "2026-03-02",
                    "customer_number": "EN-8812-0042",
                    "end_of_supply_on": "2026-03-30",
                    "resident": {
                        "name": "Sanne de Vries",
                        "date_of_birth": "1988-04-12",
                        "street": "Oudegracht 12",
                        "postcode": "3512 JE",
                        "town": "Utrecht",
                        "phone": "06-12345678",
                        "email": "sanne.devries@example.org",
                    },
                }
            ]
        },
    )

    creditor_kind: CreditorKind
    arrears_amount: Decimal = Field(gt=0, le=1_000_000, decimal_places=2, description="euros")
    signal_date: date = Field(description="the day your collection steps ended in this signal")
    customer_number: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/-]+$", description="yours"
    )
    end_of_supply_on: date | None = Field(
        default=None, description="energy only: the day supply ends (your notice)"
    )
    resident: SignalResident

    @model_validator(mode="after")
    def _end_of_supply_from_energy_only(self) -> SignalIn:
        if self.end_of_supply_on is not None and self.creditor_kind is not CreditorKind.ENERGY:
            raise ValueError("end_of_supply_on: only an energy supplier gives such a notice")
        return self


class SignalReceipt(BaseModel):
    signal_id: str
    received_at: datetime


# The read models are filled from the domain's objects by attribute name (`of`); only a
# field that a client knows by another name names the attribute it comes from.
class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    attempt: int = Field(validation_alias="number")
    method: OutreachMethod
    reached: bool
    attempted_at: datetime
    recorded_by: str

    @classmethod
    def of(cls, attempt: OutreachAttempt) -> AttemptOut:
        return cls.model_validate(attempt)


class SignalOut(BaseModel):
    """A signal without who it is about: what a list shows."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    signal_id: str = Field(validation_alias="id")
    state: SignalState
    creditor_organisation_id: str
    creditor_kind: CreditorKind
    signal_date: date
    end_of_supply_on: date | None
    received_at: datetime
    outreach_due_by: datetime
    first_outreach_at: datetime | None
    reached: bool
    overdue: bool
    overdue_flagged_at: datetime | None
    attempts: list[AttemptOut]
    referral_id: str | None

    @classmethod
    def of(cls, signal: Signal) -> SignalOut:
        return cls.model_validate(signal)


class SignalWithDetails(SignalOut):
    """One signal with who it is about, for the worker who reaches out."""

    details: SignalDetails


class OutreachIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: OutreachMethod
    reached: bool = Field(description="did the attempt reach the resident")
    attempted_at: AwareDatetime


class HelpConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    given_by: ConsentGiver = ConsentGiver.CLIENT
    purposes: list[ConsentPurpose] = Field(
        default=[ConsentPurpose.REMINDERS],
        min_length=1,
        description="reminders: the organisation may send reminders; debt_counselling: the "
        "region's debt-counselling partner may be asked to help",
    )
    granted_at: AwareDatetime


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepts_help: bool
    consent: HelpConsentIn | None = Field(
        default=None, description="required when the resident accepts help"
    )
    topic: ReferralTopic = ReferralTopic.DEBTS_MATERIAL
    answered_at: AwareDatetime


class AnswerOut(BaseModel):
    signal: SignalOut
    referral_id: str | None = None
    # Where the referral made from it stands: accepted, waitlisted, or linked to one open.
    referral_state: ReferralState | None = None


class SignalErased(BaseModel):
    signal_id: str
    erased_at: datetime


def _worker(caller: Caller) -> str:
    if caller.worker_id is None:
        raise DomainError("this key belongs to no social worker; use a worker's key")
    return caller.worker_id


def _not_after_now(moment: datetime, now: datetime, what: str) -> None:
    if moment > now:
        raise DomainError(f"{what} lies in the future")


async def _own_signal(tx: IntakeTransaction, signal_id: str, caller: Caller) -> Signal:
    signal = await tx.signals.get(signal_id)
    # Another organisation's signal is reported as absent: not even its existence leaks.
    if signal is None or signal.organisation_id != caller.organisation_id:
        raise NotFound(f"no signal {signal_id} at your organisation")
    return signal


@router.post(
    "/signals",
    status_code=http.HTTP_201_CREATED,
    response_model=SignalReceipt,
    responses={
        **replay_responses("signal"),
        422: {"description": "Invalid, or the resident lives outside the chain's area"},
        **TOO_MANY,
    },
)
async def receive_signal(
    body: SignalIn,
    response: Response,
    caller: Creditor,
    deps: Deps,
    idempotency_key: IdempotencyKey = None,
) -> SignalReceipt:
    """A creditor reports arrears (Wgs early-warning signal). The organisation that serves
    the resident's postcode is asked to reach out; you hear nothing about the resident."""
    uow, settings = deps.uow, deps.settings
    request = KeyedRequest.of(body, idempotency_key, deps.keys.pseudonym, "signal")
    windows = OutreachWindows(settings.signal_outreach_window, settings.signal_end_of_supply_window)

    async def receive() -> Signal:
        region = deps.regions.route(body.resident.postcode_area)
        if region is None:
            raise OutsideRegion(
                "the resident lives outside the chain's area: send the signal to the resident's "
                "own municipality (nothing of it was kept)"
            )
        async with uow.command() as tx:
            signal = Signal.receive(
                region=region,
                creditor_organisation_id=caller.organisation_id,
                creditor_kind=body.creditor_kind,
                signal_date=body.signal_date,
                end_of_supply_on=body.end_of_supply_on,
                windows=windows,
                at=tx.clock.now(),
            )
            details = SignalDetails(
                resident=body.resident,
                arrears_amount=body.arrears_amount,
                customer_number=body.customer_number,
            )
            await tx.signals.add(signal, details, idempotency_key, request.request_print)
            return signal

    signal, _ = await request.made_once(
        uow,
        response,
        lambda tx, key: tx.signals.by_idempotency_key(caller.organisation_id, key),
        lambda: retrying(receive),
    )
    return SignalReceipt(signal_id=signal.id, received_at=signal.received_at)


@router.get("/signals", response_model=list[SignalOut])
async def signals(
    caller: Reader,
    uow: UowDep,
    state: Annotated[SignalState | None, Query(description="open, accepted or declined")] = None,
    overdue: Annotated[
        bool | None, Query(description="true: only those flagged for missing the window")
    ] = None,
) -> list[SignalOut]:
    """Your organisation's signals, oldest first, without who they are about."""
    async with uow.reading() as tx:
        found = await tx.signals.of_organisation(caller.organisation_id, state, overdue)
    return [SignalOut.of(s) for s in found]


@router.get("/signals/{signal_id}", response_model=SignalWithDetails)
async def one_signal(signal_id: SignalPath, caller: Reader, uow: UowDep) -> SignalWithDetails:
    """One signal, with the resident's name, address and contact: to reach out."""
    async with uow.reading() as tx:
        signal = await _own_signal(tx, signal_id, caller)
        details = await tx.signals.details(signal_id)
    if details is None:
        raise NotFound(f"no signal {signal_id} at your organisation")
    return SignalWithDetails(**SignalOut.of(signal).model_dump(), details=details)


@router.post(
    "/signals/{signal_id}/outreach", status_code=http.HTTP_201_CREATED, response_model=AttemptOut
)
async def record_outreach(
    signal_id: SignalPath, body: OutreachIn, caller: Worker, uow: UowDep
) -> AttemptOut:
    """One attempt to reach the resident: a letter, a call or a home visit, reached or not."""
    worker = _worker(caller)

    async def record() -> OutreachAttempt:
        async with uow.command() as tx:
            _not_after_now(body.attempted_at, tx.clock.now(), "the attempt")
            signal = await _own_signal(tx, signal_id, caller)
            attempt = signal.record_outreach(body.method, body.reached, body.attempted_at, worker)
            await tx.signals.save(signal)
            return attempt

    return AttemptOut.of(await retrying(record))


@router.post("/signals/{signal_id}/answer", response_model=AnswerOut)
async def record_answer(
    signal_id: SignalPath, body: AnswerIn, caller: Worker, deps: Deps
) -> AnswerOut:
    """The resident's answer once reached: declines (the signal closes), or accepts help,
    with their consent: then it becomes a referral to your organisation, received as any
    other (accepted, or waitlisted when the caseload is full)."""
    if body.accepts_help and body.consent is None:
        raise DomainError("a resident who accepts help gives consent: send `consent`")
    uow = deps.uow
    if not body.accepts_help:
        return await retrying(lambda: _decline(signal_id, body, caller, uow))
    # One id for every attempt: a retried transaction finds the place it claimed before.
    referral_id = new_id("ref")

    async def accept() -> AnswerOut:
        assert body.consent is not None
        async with uow.command() as tx:
            _not_after_now(body.answered_at, tx.clock.now(), "the answer")
            signal = await _own_signal(tx, signal_id, caller)
            signal.accept(referral_id, body.answered_at)  # refused before a place is claimed
            details = await tx.signals.details(signal_id)
            if details is None:
                raise NotFound(f"the details of signal {signal_id} were deleted")
            referral = await reception.receive(
                tx,
                reception.Submission(
                    referrer=Referrer(
                        ReferrerType.EARLY_WARNING, caller.organisation_id, signal.id
                    ),
                    topic=body.topic,
                    urgency=Urgency(disconnection=signal.end_of_supply_on is not None),
                    client=details.resident.as_client(),
                    consent=reception.ConsentGiven(
                        body.consent.given_by,
                        tuple(dict.fromkeys(body.consent.purposes)),
                        body.consent.granted_at,
                    ),
                ),
                deps.regions,
                referral_id=referral_id,
            )
            await tx.signals.save(signal)
            return AnswerOut(
                signal=SignalOut.of(signal),
                referral_id=referral.id,
                referral_state=referral.state,
            )

    async with reception.claimed_for(
        deps.caseloads, referral_id, lambda freed: recheck_waiting_list(uow, freed)
    ):
        answer = await retrying(accept)
    if answer.referral_state is ReferralState.WAITLISTED:
        await recheck_waiting_list(uow, caller.organisation_id)
    return answer


async def _decline(signal_id: str, body: AnswerIn, caller: Caller, uow: UowDep) -> AnswerOut:
    async with uow.command() as tx:
        _not_after_now(body.answered_at, tx.clock.now(), "the answer")
        signal = await _own_signal(tx, signal_id, caller)
        signal.decline(body.answered_at)
        await tx.signals.save(signal)
    return AnswerOut(signal=SignalOut.of(signal))


@router.post(
    "/signals/{signal_id}/erasure", status_code=http.HTTP_202_ACCEPTED, response_model=SignalErased
)
async def erase_signal(signal_id: SignalPath, caller: Worker, uow: UowDep) -> SignalErased:
    """The resident asks for the signal to be forgotten: deleted at once, key first. (Once
    accepted, erase the client: that deletes the signal too.)"""

    async def erase() -> SignalErased:
        async with uow.command() as tx:
            signal = await _own_signal(tx, signal_id, caller)
            now = tx.clock.now()
            signal.delete_data(SignalDeletionReason.ERASURE_REQUESTED, now)
            await tx.signals.delete(signal)
            return SignalErased(signal_id=signal_id, erased_at=now)

    return await retrying(erase)
