"""The FHIR front door's mapping, without a server: the example GP Bundle reads as the JSON
door's referral, invalid resources are refused as OperationOutcomes that never echo a value,
and the referral's life reads as a Task (valid FHIR R4 by fhir.resources' models)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.task import Task

from ketenbus.contracts.events import Urgency
from ketenbus.contracts.values import ConsentGiver, ReferralTopic, ReferrerType, new_id
from ketenbus.intake import fhir
from ketenbus.intake.api import ReferralIn
from ketenbus.intake.domain import Organisation, Referral, Referrer, triage
from ketenbus.intake.regions import RegionTable
from ketenbus.kit.fhir import outcome

GP = "huisarts-de-linde"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
REGIONS = RegionTable.load()
# The JSON door's own example: the FHIR example Bundle is the same referral.
JSON_EXAMPLE = ReferralIn.model_json_schema()["examples"][0]


def example() -> dict[str, Any]:
    text = resources.files("ketenbus.intake").joinpath("data/fhir-referral-bundle.json")
    return json.loads(text.read_text("utf-8"))


def resource(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def read(bundle: dict[str, Any] | bytes, organisation: str = GP) -> ReferralIn:
    raw = bundle if isinstance(bundle, bytes) else json.dumps(bundle).encode()
    return fhir.referral_from_bundle(raw, organisation)


def refused(bundle: dict[str, Any] | bytes, organisation: str = GP) -> fhir.Refused:
    with pytest.raises(fhir.Refused) as caught:
        read(bundle, organisation)
    refusal = caught.value
    # Always a valid OperationOutcome, whatever was wrong.
    OperationOutcome.model_validate(outcome(refusal.issues))
    return refusal


def where(refusal: fhir.Refused) -> set[str | None]:
    return {issue.expression for issue in refusal.issues}


def test_the_example_bundle_is_the_json_doors_example_referral():
    assert read(example()) == ReferralIn.model_validate(JSON_EXAMPLE)


def test_a_crisis_a_parent_and_more_purposes_are_read_from_their_resources():
    bundle = example()
    request = resource(bundle, "ServiceRequest")
    request["reasonCode"].append(
        {"coding": [{"system": fhir.CRISIS, "code": "threatened_eviction"}]}
    )
    request["category"][0]["coding"][0]["code"] = "municipality"
    request["identifier"] = []
    patient = resource(bundle, "Patient")
    patient["telecom"] = [{"system": "sms", "value": "06-12345678", "rank": 1}]
    patient["communication"][0]["language"]["coding"][0]["code"] = "en"
    consent = resource(bundle, "Consent")
    consent["provision"]["purpose"].append({"system": fhir.PURPOSE, "code": "reminders"})
    consent["performer"] = [{"reference": "RelatedPerson/mother"}]
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "RelatedPerson",
                "id": "mother",
                "patient": {"reference": "urn:uuid:5b7f1c2e-0d5a-4c8e-9a51-3c2f6f0a1b03"},
                "relationship": [{"coding": [{"system": fhir.ROLE_CODE, "code": "MTH"}]}],
            }
        }
    )

    referral = read(bundle)

    assert referral.urgency == Urgency(threatened_eviction=True)
    assert referral.referrer_type is ReferrerType.MUNICIPALITY
    assert referral.referrer_reference is None
    assert (referral.client.phone, referral.client.email) == ("06-12345678", None)
    assert referral.client.preferred_channel.value == "sms"
    assert referral.client.language.value == "en"
    assert [p.value for p in referral.consent.purposes] == ["referral_feedback", "reminders"]
    assert referral.consent.given_by is ConsentGiver.PARENT


def test_what_is_not_a_fhir_bundle_is_refused_with_400():
    assert refused(b"{not json").status_code == 400
    assert refused({"resourceType": "Patient"}).status_code == 400
    bundle = example()
    resource(bundle, "Patient")["birthDate"] = "12-04-1988"
    resource(bundle, "Consent")["dateTime"] = "gisteren"

    refusal = refused(bundle)

    assert refusal.status_code == 400
    assert where(refusal) == {
        "Bundle.entry[2].resource.birthDate",
        "Bundle.entry[3].resource.dateTime",
    }
    said = json.dumps(outcome(refusal.issues))
    assert "12-04-1988" not in said and "gisteren" not in said


def test_a_bundle_without_consent_or_with_strangers_is_refused_with_422():
    bundle = example()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Consent"]
    bundle["entry"].append({"resource": {"resourceType": "Observation", "status": "final",
                                         "code": {"text": "x"}}})  # fmt: skip

    refusal = refused(bundle)

    assert refusal.status_code == 422
    assert {i.code for i in refusal.issues} == {"required", "not-supported"}
    assert any("Consent" in i.diagnostics for i in refusal.issues)


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (
            lambda b: resource(b, "Consent")["provision"]["purpose"][0].update(code="marketing"),
            "Consent.provision.purpose",
        ),
        (lambda b: resource(b, "Consent").update(dateTime="2026-03-02"), "Consent.dateTime"),
        (lambda b: resource(b, "Consent").update(status="rejected"), "Consent.status"),
        (
            lambda b: resource(b, "ServiceRequest").update(reasonCode=[]),
            "ServiceRequest.reasonCode",
        ),
        (lambda b: resource(b, "ServiceRequest").update(category=[]), "ServiceRequest.category"),
        (
            lambda b: resource(b, "Task").update(focus={"reference": "Patient/elsewhere"}),
            "Task.focus",
        ),
        (lambda b: resource(b, "Task").update(status="accepted"), "Task.status"),
        (
            lambda b: resource(b, "Patient")["address"][0].update(postalCode="ZZ 1234"),
            "Patient.address.postalCode",
        ),
        (lambda b: resource(b, "Patient").update(birthDate="1850-01-01"), "Patient.birthDate"),
        (lambda b: resource(b, "Patient").pop("name"), "Patient.name"),
        (
            lambda b: resource(b, "Patient")["communication"][0]["language"]["coding"][0].update(
                code="de"
            ),
            "Patient.communication.language",
        ),
    ],
)
def test_valid_fhir_that_is_no_referral_the_chain_can_take_is_refused_with_422(change, expression):
    bundle = copy.deepcopy(example())
    change(bundle)

    refusal = refused(bundle)

    assert refusal.status_code == 422
    assert expression in where(refusal)
    said = json.dumps(outcome(refusal.issues))
    for value in ("ZZ 1234", "1850-01-01", "Sanne", "marketing"):
        assert value not in said


def test_a_bundle_cannot_speak_for_another_organisation():
    refusal = refused(example(), organisation="huisarts-oosterpoort")

    assert refusal.status_code == 403
    assert where(refusal) == {"Task.requester.identifier"}


def referral(postcode_area: str = "3512") -> Referral:
    return Referral.receive(
        client_ref=new_id("cl"),
        referrer=Referrer(ReferrerType.GP, GP, "HDL-2026-0142"),
        topic=ReferralTopic.PSYCHOSOCIAL,
        urgency=Urgency(),
        postcode_area=postcode_area,
        consent_id=new_id("cns"),
        feedback_allowed=True,
        region=REGIONS.route(postcode_area),
        at=NOW,
    )


def task(referral: Referral) -> dict[str, Any]:
    made = fhir.task_of(referral)
    Task.model_validate(made)  # valid FHIR, by the library's R4B model
    return made


def milestone(made: dict[str, Any]) -> tuple[str, str]:
    return made["status"], made["businessStatus"]["coding"][0]["code"]


def test_the_task_follows_the_referral_from_request_to_closure():
    made = referral()
    seen = [milestone(task(made))]
    triage(made, Organisation("welzijn-utrecht", capacity=None), 0, NOW)
    seen.append(milestone(task(made)))
    made.first_contact(NOW + timedelta(days=3))
    seen.append(milestone(task(made)))
    made.close(NOW + timedelta(days=60))
    closed = task(made)
    seen.append(milestone(closed))

    assert seen == [
        ("requested", "received"),
        ("accepted", "accepted"),
        ("in-progress", "first_contact"),
        ("completed", "closed"),
    ]
    assert closed["id"] == fhir.task_id(made.id) and fhir.referral_id(closed["id"]) == made.id
    assert closed["businessStatus"]["text"] == "Afgesloten"
    assert closed["focus"]["identifier"]["value"] == "HDL-2026-0142"
    assert closed["lastModified"] == (NOW + timedelta(days=60)).isoformat()
    assert "statusReason" not in closed
    # The closed loop and nothing more: no client, no topic, no organisation that helps.
    said = json.dumps(closed)
    assert made.client_ref not in said and "psychosocial" not in said
    assert "welzijn-utrecht" not in said


def test_a_declined_referral_is_rejected_with_its_reason_and_where_to_go():
    made = task(referral("1011"))

    assert milestone(made) == ("rejected", "declined")
    [coding] = made["statusReason"]["coding"]
    assert (coding["system"], coding["code"]) == (fhir.DECLINE_REASON, "outside_region")
    assert "sociaal wijkteam" in made["statusReason"]["text"]


def test_a_waiting_referral_is_received_and_one_withdrawn_while_waiting_is_cancelled():
    made = referral()
    triage(made, Organisation("welzijn-utrecht", capacity=0), 1, NOW)
    assert milestone(task(made)) == ("received", "waitlisted")
    assert task(made)["businessStatus"]["text"] == "Op de wachtlijst"

    made.withdraw_from_waitlist(NOW + timedelta(days=1))
    cancelled = task(made)

    assert milestone(cancelled) == ("cancelled", "declined")
    assert cancelled["statusReason"]["coding"][0]["code"] == "no_consent"


def test_the_partner_docs_show_the_example_bundle_as_shipped():
    docs = resources.files("ketenbus.intake").joinpath("data/fhir-referral-bundle.json")
    partners = Path(__file__).resolve().parents[3] / "docs" / "partners.md"

    assert docs.read_text("utf-8").strip() in partners.read_text(encoding="utf-8")
