"""The FHIR R4 front door's language: a GP system's referral Bundle read as the JSON door's
referral, and the referral's closed loop told back as a FHIR Task.

Plain mapping, no I/O. The resources are validated with fhir.resources' R4B models (R4B is R4
for ServiceRequest, Task, Patient, Consent and Bundle; the library has no separate R4 package):
a Bundle that is not valid FHIR is refused with 400 before the chain's own rules are applied;
one that is valid FHIR but not a referral the chain can take is refused with 422. Either way as
an OperationOutcome that names where (a FHIRPath expression), never the value sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.relatedperson import RelatedPerson
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from ketenbus.contracts.values import (
    ConsentGiver,
    ConsentPurpose,
    DeclineReason,
    ReferralStatus,
)
from ketenbus.intake.api import ReferralIn
from ketenbus.intake.domain import Referral, ReferralState
from ketenbus.kit.fhir import BASE, Issue, instant, record_id, resource_id

# The chain's own code systems and identifiers: what FHIR has no code for.
ORGANISATION = f"{BASE}/NamingSystem/organisation"
REFERRAL = f"{BASE}/NamingSystem/referral"
REFERRER_TYPE = f"{BASE}/CodeSystem/referrer-type"
TOPIC = f"{BASE}/CodeSystem/referral-topic"
CRISIS = f"{BASE}/CodeSystem/crisis"
PURPOSE = f"{BASE}/CodeSystem/consent-purpose"
MILESTONE = f"{BASE}/CodeSystem/referral-milestone"
DECLINE_REASON = f"{BASE}/CodeSystem/decline-reason"
# HL7 v3 RoleCode: who gave consent on the client's behalf (a RelatedPerson's relationship).
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
GIVER_OF_ROLE = {
    "PRN": ConsentGiver.PARENT,
    "MTH": ConsentGiver.PARENT,
    "FTH": ConsentGiver.PARENT,
    "GUARD": ConsentGiver.GUARDIAN,
}
CRISIS_FLAGS = ("threatened_eviction", "disconnection")

# The closed loop as a Task: its status, and the Dutch milestone in businessStatus.
MILESTONES = {
    ReferralStatus.RECEIVED: ("requested", "Aangemeld"),
    ReferralStatus.WAITLISTED: ("received", "Op de wachtlijst"),
    ReferralStatus.ACCEPTED: ("accepted", "Aangenomen"),
    ReferralStatus.DECLINED: ("rejected", "Afgewezen"),
    ReferralStatus.FIRST_CONTACT: ("in-progress", "Eerste contact"),
    ReferralStatus.CLOSED: ("completed", "Afgesloten"),
}
DECLINED_BECAUSE = {
    DeclineReason.OUTSIDE_REGION: "Buiten het werkgebied",
    DeclineReason.NOT_ELIGIBLE: "Valt niet onder de hulp",
    DeclineReason.NO_CONSENT: "Geen toestemming (meer)",
    DeclineReason.INVALID_REFERRAL: "Verwijzing onvolledig",
}


class Refused(Exception):
    """The request is not taken: answered as an OperationOutcome with this status."""

    def __init__(self, status_code: int, *issues: Issue) -> None:
        super().__init__(issues[0].diagnostics if issues else "refused")
        self.status_code = status_code
        self.issues = issues


# ------------------------------------------------------------------------------ the Bundle in


def referral_from_bundle(raw: bytes, organisation_id: str) -> ReferralIn:
    """The JSON door's referral, read from a referral Bundle (ServiceRequest, Task, Patient,
    Consent, and a RelatedPerson when someone else gave consent) sent by `organisation_id`."""
    bundle = _parse(raw)
    parts = _Parts.of(bundle)
    task, request, patient, consent = parts.task, parts.request, parts.patient, parts.consent
    _check_task(task, parts, organisation_id)
    _check_request(request, parts)
    draft = {
        "referrer_type": _one_code(request.category, REFERRER_TYPE, "ServiceRequest.category"),
        "referrer_reference": _first_identifier(request),
        "topic": _one_code(request.reasonCode, TOPIC, "ServiceRequest.reasonCode"),
        "urgency": _urgency(request),
        "client": _client(patient),
        "consent": _consent(consent, parts),
    }
    try:
        return ReferralIn.model_validate(draft)
    except ValidationError as error:
        raise Refused(422, *_issues_of(error, _where_in_referral)) from None


def _parse(raw: bytes) -> Bundle:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(400, Issue("structure", "the body is not JSON")) from None
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise Refused(400, Issue("structure", "the body must be a FHIR Bundle", "Bundle"))
    try:
        return Bundle.model_validate(document)
    except ValidationError as error:
        raise Refused(400, *_issues_of(error, lambda loc: _path("Bundle", loc))) from None
    except Exception as error:  # the library's own checks, beside pydantic's: whatever
        # it cannot read is the sender's Bundle, not a failure of the service.
        problem = f"not a valid FHIR Bundle ({type(error).__name__})"
        raise Refused(400, Issue("structure", problem)) from None


@dataclass(frozen=True)
class _Parts:
    task: Task
    request: ServiceRequest
    patient: Patient
    consent: Consent
    related: RelatedPerson | None
    # Every way an entry may be referred to: its fullUrl and its `Type/id`.
    names: dict[str, Resource]

    @classmethod
    def of(cls, bundle: Bundle) -> _Parts:
        if bundle.type not in ("transaction", "collection"):
            raise Refused(422, Issue("value", "a referral is a transaction Bundle", "Bundle.type"))
        found: dict[str, list[Resource]] = {}
        names: dict[str, Resource] = {}
        for index, entry in enumerate(bundle.entry or []):
            resource = entry.resource
            if resource is None:
                raise Refused(
                    422, Issue("required", "an entry without a resource", f"Bundle.entry[{index}]")
                )
            kind = resource.get_resource_type()
            found.setdefault(kind, []).append(resource)
            if entry.fullUrl:
                names[entry.fullUrl] = resource
            if resource.id:
                names[f"{kind}/{resource.id}"] = resource
        wanted = {"Task": 1, "ServiceRequest": 1, "Patient": 1, "Consent": 1, "RelatedPerson": 0}
        issues = [
            Issue("not-supported", f"a referral Bundle holds no {kind}", f"Bundle.entry.{kind}")
            for kind in found
            if kind not in wanted
        ]
        for kind, least in wanted.items():
            count = len(found.get(kind, []))
            if count < least or count > 1:
                issues.append(
                    Issue(
                        "required" if count < least else "structure",
                        f"a referral Bundle holds exactly one {kind}"
                        if least
                        else f"a referral Bundle holds at most one {kind}",
                        "Bundle.entry",
                    )
                )
        if issues:
            raise Refused(422, *issues)

        def only(kind: str) -> Any:
            return found[kind][0]

        related = only("RelatedPerson") if "RelatedPerson" in found else None
        return cls(
            only("Task"), only("ServiceRequest"), only("Patient"), only("Consent"), related, names
        )

    def points_to(self, reference: Reference | None, target: Resource) -> bool:
        return (
            reference is not None
            and reference.reference is not None
            and self.names.get(reference.reference) is target
        )


def _check_task(task: Task, parts: _Parts, organisation_id: str) -> None:
    issues = []
    if task.status != "requested":
        issues.append(Issue("value", "a new referral's Task is requested", "Task.status"))
    if task.intent != "order":
        issues.append(Issue("value", "a referral's Task has intent order", "Task.intent"))
    if not parts.points_to(task.focus, parts.request):
        issues.append(Issue("invalid", "the Task's focus is the ServiceRequest", "Task.focus"))
    subject = getattr(task, "for", None)
    if subject is not None and not parts.points_to(subject, parts.patient):
        issues.append(Issue("invalid", "the Task is for the Patient in the Bundle", "Task.for"))
    if issues:
        raise Refused(422, *issues)
    # The key says who sends; a Bundle cannot speak for another organisation.
    identifier = task.requester.identifier if task.requester else None
    if (
        identifier is not None
        and identifier.system == ORGANISATION
        and identifier.value != organisation_id
    ):
        raise Refused(
            403,
            Issue(
                "forbidden",
                "the Task's requester is not the organisation of your key",
                "Task.requester.identifier",
            ),
        )


def _check_request(request: ServiceRequest, parts: _Parts) -> None:
    issues = []
    if request.status != "active":
        issues.append(Issue("value", "the ServiceRequest is active", "ServiceRequest.status"))
    if request.intent != "order":
        issues.append(Issue("value", "the ServiceRequest is an order", "ServiceRequest.intent"))
    if not parts.points_to(request.subject, parts.patient):
        issues.append(
            Issue(
                "invalid", "the ServiceRequest's subject is the Patient", "ServiceRequest.subject"
            )
        )
    if issues:
        raise Refused(422, *issues)


def _codes(concepts: Sequence[Any] | None, system: str) -> Iterator[str]:
    for concept in concepts or []:
        for coding in concept.coding or []:
            if coding.system == system and coding.code:
                yield coding.code


def _one_code(concepts: Sequence[Any] | None, system: str, where: str) -> str:
    codes = list(dict.fromkeys(_codes(concepts, system)))
    if len(codes) != 1:
        raise Refused(422, Issue("required", f"exactly one code of {system}", where))
    return codes[0]


def _first_identifier(request: ServiceRequest) -> str | None:
    for identifier in request.identifier or []:
        if identifier.value:
            return str(identifier.value)
    return None


def _urgency(request: ServiceRequest) -> dict[str, bool]:
    flags = set(_codes(request.reasonCode, CRISIS))
    unknown = flags - set(CRISIS_FLAGS)
    if unknown:
        raise Refused(
            422,
            Issue(
                "code-invalid",
                f"crisis codes are {', '.join(CRISIS_FLAGS)}",
                "ServiceRequest.reasonCode",
            ),
        )
    return {flag: flag in flags for flag in CRISIS_FLAGS}


def _client(patient: Patient) -> dict[str, Any]:
    """The JSON door's client from a Patient: name, birth date, postcode, phone, e-mail,
    language, and the preferred channel (the telecom ranked first)."""
    client: dict[str, Any] = {
        "name": _name(patient),
        "date_of_birth": patient.birthDate,
        "postcode": _postcode(patient),
    }
    contacts = sorted(
        (t for t in patient.telecom or [] if t.value and t.system in ("phone", "sms", "email")),
        key=lambda t: t.rank if t.rank is not None else 1_000_000,
    )
    for telecom in contacts:
        field = "email" if telecom.system == "email" else "phone"
        client.setdefault(field, telecom.value)
    if contacts:
        client["preferred_channel"] = "email" if contacts[0].system == "email" else "sms"
    client["language"] = _language(patient)
    return {k: v for k, v in client.items() if v is not None}


def _name(patient: Patient) -> str | None:
    names = sorted(patient.name or [], key=lambda n: n.use != "official")
    for name in names:
        if name.text:
            return str(name.text)
        parts = [*(name.given or []), name.family or ""]
        if joined := " ".join(p for p in parts if p):
            return joined
    return None


def _postcode(patient: Patient) -> str | None:
    addresses = sorted(patient.address or [], key=lambda a: a.use != "home")
    return next((a.postalCode for a in addresses if a.postalCode), None)


def _language(patient: Patient) -> str:
    spoken = sorted(patient.communication or [], key=lambda c: not c.preferred)
    for communication in spoken:
        for coding in communication.language.coding or []:
            code = (coding.code or "").lower()
            if code.split("-")[0] in ("nl", "en"):
                return code.split("-")[0]
    if spoken:
        raise Refused(
            422,
            Issue(
                "not-supported",
                "the chain writes to clients in nl or en",
                "Patient.communication.language",
            ),
        )
    return "nl"


def _consent(consent: Consent, parts: _Parts) -> dict[str, Any]:
    issues = []
    if consent.status != "active":
        issues.append(Issue("value", "the Consent is active", "Consent.status"))
    if not parts.points_to(consent.patient, parts.patient):
        issues.append(Issue("invalid", "the Consent is the Patient's", "Consent.patient"))
    granted_at = consent.dateTime
    if not isinstance(granted_at, datetime) or granted_at.tzinfo is None:
        issues.append(
            Issue(
                "required",
                "when consent was given, with a time and a zone",
                "Consent.dateTime",
            )
        )
    provision = consent.provision
    purposes = list(dict.fromkeys(_purposes(provision.purpose if provision else None)))
    unknown = [p for p in purposes if p not in set(ConsentPurpose)]
    if not purposes or unknown:
        issues.append(
            Issue(
                "code-invalid",
                f"consent purposes ({PURPOSE}) are " + ", ".join(p.value for p in ConsentPurpose),
                "Consent.provision.purpose",
            )
        )
    if issues:
        raise Refused(422, *issues)
    return {"given_by": _giver(consent, parts), "purposes": purposes, "granted_at": granted_at}


def _purposes(codings: Sequence[Any] | None) -> Iterator[str]:
    for coding in codings or []:
        if coding.system == PURPOSE and coding.code:
            yield coding.code


def _giver(consent: Consent, parts: _Parts) -> ConsentGiver:
    """The client, unless the consent's performer is a parent or guardian (a RelatedPerson)."""
    for performer in consent.performer or []:
        if parts.points_to(performer, parts.patient):
            return ConsentGiver.CLIENT
        if parts.related is not None and parts.points_to(performer, parts.related):
            for code in _role_codes(parts.related):
                if code in GIVER_OF_ROLE:
                    return GIVER_OF_ROLE[code]
            raise Refused(
                422,
                Issue(
                    "code-invalid",
                    "consent for the client is given by a parent (PRN, MTH, FTH) or a "
                    f"guardian (GUARD) of {ROLE_CODE}",
                    "RelatedPerson.relationship",
                ),
            )
        raise Refused(
            422,
            Issue(
                "invalid",
                "the Consent's performer is the Patient or a RelatedPerson in the Bundle",
                "Consent.performer",
            ),
        )
    return ConsentGiver.CLIENT


def _role_codes(related: RelatedPerson) -> Iterator[str]:
    for concept in related.relationship or []:
        for coding in concept.coding or []:
            if coding.system == ROLE_CODE and coding.code:
                yield coding.code


# Where a field of the JSON referral came from in the Bundle.
_SOURCE = {
    "referrer_type": "ServiceRequest.category",
    "referrer_reference": "ServiceRequest.identifier.value",
    "topic": "ServiceRequest.reasonCode",
    "urgency": "ServiceRequest.reasonCode",
    "client.name": "Patient.name",
    "client.date_of_birth": "Patient.birthDate",
    "client.postcode": "Patient.address.postalCode",
    "client.phone": "Patient.telecom",
    "client.email": "Patient.telecom",
    "client.language": "Patient.communication.language",
    "client.preferred_channel": "Patient.telecom.rank",
    "client": "Patient",
    "consent.purposes": "Consent.provision.purpose",
    "consent.granted_at": "Consent.dateTime",
    "consent.given_by": "Consent.performer",
    "consent": "Consent",
}


def _where_in_referral(loc: tuple[Any, ...]) -> str:
    path = [str(p) for p in loc if not isinstance(p, int)]
    for length in range(len(path), 0, -1):
        if (found := _SOURCE.get(".".join(path[:length]))) is not None:
            return found
    return "Bundle"


def _path(root: str, loc: tuple[Any, ...]) -> str:
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _issues_of(error: ValidationError, where: Any) -> list[Issue]:
    """The problems pydantic found, without the values: they may be a name or a phone."""
    issues = []
    for problem in error.errors(include_url=False, include_context=False):
        sent = problem.get("input")
        message = problem["msg"]
        if isinstance(sent, str | int | float) and str(sent) and str(sent) in message:
            message = "invalid value"
        code = "required" if problem["type"] == "missing" else "value"
        issues.append(Issue(code, message, where(tuple(problem["loc"]))))
    return issues


# ------------------------------------------------------------------------------ the Task out


def task_id(referral_id: str) -> str:
    return resource_id(referral_id)


def referral_id(task_id: str) -> str:
    return record_id(task_id)


def task_of(referral: Referral) -> dict[str, Any]:
    """Where the referral stands, as a Task: the closed loop the referrer may know, nothing
    about the person or the help (the same as the JSON door's status)."""
    loop = referral.loop_status
    status, milestone = MILESTONES[loop]
    reason = referral.loop_reason
    # A client who asked to be forgotten while waiting: the request is off, not turned down.
    if loop is ReferralStatus.DECLINED and referral.state is ReferralState.WITHDRAWN:
        status = "cancelled"
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id(referral.id),
        "identifier": [{"system": REFERRAL, "value": referral.id}],
        "status": status,
        "businessStatus": {
            "coding": [{"system": MILESTONE, "code": loop.value, "display": milestone}],
            "text": milestone,
        },
        "intent": "order",
        "requester": {
            "identifier": {"system": ORGANISATION, "value": referral.referrer.organisation_id}
        },
    }
    if referral.referrer.reference:
        task["focus"] = {
            "type": "ServiceRequest",
            "identifier": {"value": referral.referrer.reference},
        }
    if reason is not None:
        because = DECLINED_BECAUSE[reason]
        task["statusReason"] = {
            "coding": [{"system": DECLINE_REASON, "code": reason.value, "display": because}],
            # Where to go instead, when the chain knows (outside the region).
            "text": referral.loop_redirect or because,
        }
    if referral.loop_changed_at is not None:
        task["lastModified"] = instant(referral.loop_changed_at)
    return task


# Kept for the OpenAPI document: the shapes a client may expect (the FHIR specification has
# the rest). Loose on purpose: they say what is always there.
TASK_SCHEMA: dict[str, Any] = {
    "title": "FhirTask",
    "type": "object",
    "required": ["resourceType", "id", "status", "intent", "businessStatus"],
    "properties": {
        "resourceType": {"const": "Task"},
        "id": {"type": "string", "pattern": r"^ref-[0-9a-f]{32}$"},
        "status": {"enum": sorted({status for status, _ in MILESTONES.values()} | {"cancelled"})},
        "intent": {"const": "order"},
        "businessStatus": {"type": "object"},
        "statusReason": {"type": "object"},
        "identifier": {"type": "array"},
        "requester": {"type": "object"},
        "focus": {"type": "object"},
        "lastModified": {"type": "string"},
    },
}
