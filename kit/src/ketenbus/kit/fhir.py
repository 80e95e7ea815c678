"""FHIR over HTTP as the services that speak it answer: the media type, a refusal as an
OperationOutcome, instants with their zone, and how both are described in OpenAPI.

Plain dicts and FastAPI only: the FHIR models (fhir.resources) stay with the service that
reads or writes a resource. Intake's front door and learning's Koppeltaal view use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Response, status

from ketenbus.kit.web import INVALID_REQUEST_SCHEMA

FHIR_JSON = "application/fhir+json"
# Where the chain's own code systems, naming systems and canonical urls live: what FHIR has
# no code or identifier for.
BASE = "https://ketenbus.nl/fhir"
MAX_ISSUES = 20


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: an issue-type code, a sentence, and where (FHIRPath)."""

    code: str
    diagnostics: str
    expression: str | None = None


def outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An OperationOutcome of errors."""
    listed = []
    for issue in list(issues)[:MAX_ISSUES]:
        entry: dict[str, Any] = {
            "severity": "error",
            "code": issue.code,
            "diagnostics": issue.diagnostics,
        }
        if issue.expression:
            entry["expression"] = [issue.expression]
        listed.append(entry)
    return {"resourceType": "OperationOutcome", "issue": listed}


def answer(content: dict[str, Any], status_code: int = 200, **headers: str) -> Response:
    """A resource (or an OperationOutcome) as FHIR JSON."""
    return Response(
        json.dumps(content), status_code=status_code, media_type=FHIR_JSON, headers=headers
    )


def not_found(diagnostics: str) -> Response:
    """A read of what the caller may not see is a read of nothing: 404, never 403."""
    return answer(outcome([Issue("not-found", diagnostics)]), status.HTTP_404_NOT_FOUND)


def resource_id(record_id: str) -> str:
    """A FHIR id has no underscore: the record `enr_<hex>` is the resource `enr-<hex>`."""
    return record_id.replace("_", "-", 1)


def record_id(resource_id: str) -> str:
    return resource_id.replace("-", "_", 1)


def instant(moment: datetime) -> str:
    """A FHIR instant or dateTime with a time carries its zone; the stores keep UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


# ------------------------------------------------------------------------- for OpenAPI


def described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An OpenAPI response of FHIR JSON."""
    return {"description": description, "content": {FHIR_JSON: {"schema": schema}}}


def refusal(description: str, *, or_plain: bool = False) -> dict[str, Any]:
    """An OpenAPI response that is an OperationOutcome. `or_plain`: this status may also come
    from the checks every route shares (the key's scope, a header's form), answered as every
    route answers them."""
    response = described(OUTCOME_SCHEMA, description)
    if or_plain:
        response["content"]["application/json"] = {"schema": INVALID_REQUEST_SCHEMA}
    return response


OUTCOME_SCHEMA: dict[str, Any] = {
    "title": "FhirOperationOutcome",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
