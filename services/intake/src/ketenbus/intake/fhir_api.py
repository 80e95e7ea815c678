"""The FHIR R4 front door, beside the JSON one: a GP system refers with a Bundle and reads
the referral's closed loop as a Task. The same key and scopes, the same Idempotency-Key, the
same rate limits and the same reception path as POST /v1/referrals (api.refer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from ketenbus.intake import fhir
from ketenbus.intake.api import (
    Deps,
    IdempotencyKey,
    StatusReader,
    Submitter,
    UowDep,
    refer,
    referral_of,
)
from ketenbus.kit.fhir import Issue, answer, described, not_found, outcome, refusal
from ketenbus.kit.ratelimit import TOO_MANY

router = APIRouter(prefix="/v1/fhir", tags=["fhir"])

TaskPath = Annotated[str, Path(pattern=r"^ref-[0-9a-f]{32}$")]
# Content types a FHIR client may send the Bundle as.
ACCEPTED = ("application/fhir+json", "application/json")


def _refused(refused: fhir.Refused) -> Response:
    return answer(outcome(refused.issues), refused.status_code)


BUNDLE_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:...", "resource": {"resourceType": "ServiceRequest"}},
        {"fullUrl": "urn:uuid:...", "resource": {"resourceType": "Task"}},
        {"fullUrl": "urn:uuid:...", "resource": {"resourceType": "Patient"}},
        {"fullUrl": "urn:uuid:...", "resource": {"resourceType": "Consent"}},
    ],
}
BUNDLE_BODY = {
    "required": True,
    "description": "A FHIR R4 transaction Bundle: one ServiceRequest, Task, Patient and "
    "Consent (and a RelatedPerson when a parent or guardian consents). docs/partners.md, "
    "'The FHIR front door', shows a whole one.",
    "content": {
        media: {
            "schema": {
                "type": "object",
                "required": ["resourceType", "type", "entry"],
                "properties": {
                    "resourceType": {"const": "Bundle"},
                    "type": {"enum": ["transaction", "collection"]},
                    "entry": {"type": "array", "items": {"type": "object"}},
                },
            },
            "example": BUNDLE_EXAMPLE,
        }
        for media in ACCEPTED
    },
}


@router.post(
    "/Bundle",
    status_code=status.HTTP_201_CREATED,
    response_class=Response,
    responses={
        201: described(fhir.TASK_SCHEMA, "A new referral: its Task"),
        200: described(fhir.TASK_SCHEMA, "Seen before under this Idempotency-Key: its Task"),
        400: refusal("Not a valid FHIR R4 Bundle"),
        403: refusal(
            "The Task's requester is another organisation than the key's (or the key lacks "
            "referrals:write)",
            or_plain=True,
        ),
        409: refusal("This Idempotency-Key was used before for a different referral"),
        415: refusal("Send application/fhir+json"),
        422: refusal(
            "Valid FHIR, but not a referral the chain can take (or an Idempotency-Key of the "
            "wrong form)",
            or_plain=True,
        ),
        **TOO_MANY,
    },
    openapi_extra={"requestBody": BUNDLE_BODY},
)
async def submit_bundle(
    request: Request, caller: Submitter, deps: Deps, idempotency_key: IdempotencyKey = None
) -> Response:
    """Refer a resident with a FHIR referral Bundle. The answer is the referral's Task, whose
    status follows the closed loop; nothing about the person comes back."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ACCEPTED:
        return answer(
            outcome([Issue("not-supported", "send application/fhir+json")]),
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    try:
        body = fhir.referral_from_bundle(await request.body(), caller.organisation_id)
    except fhir.Refused as refusal:
        return _refused(refusal)
    try:
        referral, replayed = await refer(body, caller, deps, idempotency_key, Response())
    except HTTPException as error:
        if error.status_code != status.HTTP_409_CONFLICT:
            raise
        return answer(outcome([Issue("conflict", str(error.detail))]), error.status_code)
    task = fhir.task_of(referral)
    return answer(
        task,
        status.HTTP_200_OK if replayed else status.HTTP_201_CREATED,
        Location=f"/v1/fhir/Task/{task['id']}",
    )


@router.get(
    "/Task/{task_id}",
    response_class=Response,
    responses={
        200: described(fhir.TASK_SCHEMA, "Where the referral stands"),
        404: refusal("No such Task for your organisation"),
        **TOO_MANY,
    },
)
async def read_task(task_id: TaskPath, caller: StatusReader, uow: UowDep) -> Response:
    """The referral's Task, for the organisation that made it and no one else: requested,
    received (waitlisted), accepted, rejected (statusReason), in-progress (first contact),
    completed (closed), cancelled; the Dutch milestone in businessStatus."""
    referral = await referral_of(uow, fhir.referral_id(task_id), caller)
    if referral is None:
        return not_found("no such Task for your organisation")
    return answer(fhir.task_of(referral))
