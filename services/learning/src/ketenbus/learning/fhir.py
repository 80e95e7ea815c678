"""The catalogue and a client's modules told in Koppeltaal 2.0's language: each module an
ActivityDefinition, each enrolment a Task that instantiates it.

Plain mapping, no I/O, valid FHIR R4 (tests parse every resource back with fhir.resources).
Shaped after Koppeltaal's KT2 profiles where they apply: a Task names its ActivityDefinition
both by `instantiatesCanonical` and by Koppeltaal's `instantiates` extension, carries an
identifier, `priority: routine` and the `view` code, and its patient (`for`, `owner`) only by
the pseudonymous client reference. Not claimed as KT2-conformant (no `meta.profile`): an
ActivityDefinition there needs an Endpoint to launch the module from, and learning's modules
live in the client portal, not behind a SMART launch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ketenbus.contracts.values import Language, StepKind
from ketenbus.kit.fhir import BASE, instant, resource_id
from ketenbus.learning.catalogue import Module
from ketenbus.learning.domain import Enrolment, EnrolmentStatus

MODULE = f"{BASE}/NamingSystem/module"
ENROLMENT = f"{BASE}/NamingSystem/enrolment"
CLIENT = f"{BASE}/NamingSystem/client"
ACTIVITY_DEFINITION = f"{BASE}/ActivityDefinition"
# How far the client got: steps done of the module's steps (KT2 leaves Task.output out).
PROGRESS = f"{BASE}/StructureDefinition/module-progress"
# Koppeltaal's own: the extension that names the ActivityDefinition a Task instantiates, the
# Task code for a task the client opens and views, and the topic of patient-started activity.
INSTANTIATES = "http://vzvz.nl/fhir/StructureDefinition/instantiates"
TASK_CODE = "http://vzvz.nl/fhir/CodeSystem/koppeltaal-task-code"
DEFINITION_TOPIC = "http://vzvz.nl/fhir/CodeSystem/koppeltaal-definition-topic"

# An enrolment's life as Task.status. Left idle is not an end (the client may pick it up at
# any time and is never punished for the pause): on-hold, which FHIR lets go back to
# in-progress, not cancelled or failed, which it does not.
TASK_STATUS = {
    EnrolmentStatus.ENROLLED: "ready",
    EnrolmentStatus.STARTED: "in-progress",
    EnrolmentStatus.COMPLETED: "completed",
    EnrolmentStatus.ABANDONED: "on-hold",
}


def canonical(module_id: str) -> str:
    return f"{ACTIVITY_DEFINITION}/{module_id}"


def activity_definition(module: Module, language: Language) -> dict[str, Any]:
    """A module as the catalogue has it, in one language: title and summary, nothing of
    anyone. No `kind`: Koppeltaal's profile leaves it out."""
    definition: dict[str, Any] = {
        "resourceType": "ActivityDefinition",
        "id": module.id,
        "language": language.value,
        "url": canonical(module.id),
        "identifier": [{"use": "official", "system": MODULE, "value": module.id}],
        "name": "".join(part.capitalize() for part in module.id.split("-")),
        "title": module.title(language),
        "status": "active",
        "description": module.summary(language),
    }
    if module.self_help:
        definition["topic"] = [{"coding": [_topic(module)]}]
    return definition


def _topic(module: Module) -> dict[str, str]:
    """A module a client may start on their own: a self-scan is self-assessment, the rest
    self-treatment (Koppeltaal's words and displays)."""
    if all(step.kind is StepKind.QUESTIONNAIRE for step in module.steps):
        return {"system": DEFINITION_TOPIC, "code": "self-assessment", "display": "Zelfstarten"}
    return {"system": DEFINITION_TOPIC, "code": "self-treatment", "display": "Zelfhulp"}


def patient(client_ref: str) -> dict[str, Any]:
    """The client by their pseudonymous reference only: no name, no BSN, nothing to resolve."""
    return {"type": "Patient", "identifier": {"system": CLIENT, "value": client_ref}}


def task_of(enrolment: Enrolment, module: Module | None) -> dict[str, Any]:
    """Where the client stands in a module, for the client's own eyes: the status, how many
    steps are done, when it was assigned and last changed. No homework, no scores."""
    steps_total = len(module.steps) if module else 0
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": resource_id(enrolment.id),
        "extension": [
            {
                "url": INSTANTIATES,
                "valueReference": {
                    "type": "ActivityDefinition",
                    "reference": f"ActivityDefinition/{enrolment.module_id}",
                },
            },
            {
                "url": PROGRESS,
                "extension": [
                    {"url": "stepsCompleted", "valueUnsignedInt": len(enrolment.steps_done)},
                    {"url": "stepsTotal", "valueUnsignedInt": steps_total},
                ],
            },
        ],
        "identifier": [{"use": "official", "system": ENROLMENT, "value": enrolment.id}],
        "instantiatesCanonical": canonical(enrolment.module_id),
        "status": TASK_STATUS[enrolment.status],
        # The worker's assignment is an order; a module the client chose while waiting is
        # their own plan.
        "intent": "plan" if enrolment.self_enrolled else "order",
        "priority": "routine",
        "code": {
            "coding": [{"system": TASK_CODE, "code": "view", "display": "This task can be viewed"}]
        },
        "for": patient(enrolment.client_ref),
        "owner": patient(enrolment.client_ref),  # the client does the module
        "authoredOn": instant(enrolment.enrolled_at),
        "lastModified": instant(last_change(enrolment)),
    }
    if module is not None:
        task["description"] = module.title(enrolment.language)
    return task


def last_change(enrolment: Enrolment) -> datetime:
    moments = [enrolment.enrolled_at, enrolment.last_progress_at, enrolment.abandoned_at]
    return max(moment for moment in moments if moment is not None)


def searchset(entries: list[tuple[str, dict[str, Any]]], self_url: str) -> dict[str, Any]:
    """A search's answer: every match with the address it is read at."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {"fullUrl": address, "resource": resource, "search": {"mode": "match"}}
            for address, resource in entries
        ],
    }


# Kept for the OpenAPI document: what is always there (the FHIR specification has the rest).
ACTIVITY_DEFINITION_SCHEMA: dict[str, Any] = {
    "title": "FhirActivityDefinition",
    "type": "object",
    "required": ["resourceType", "id", "url", "title", "status"],
    "properties": {
        "resourceType": {"const": "ActivityDefinition"},
        "id": {"type": "string"},
        "language": {"enum": [language.value for language in Language]},
        "url": {"type": "string"},
        "identifier": {"type": "array"},
        "name": {"type": "string"},
        "title": {"type": "string"},
        "status": {"const": "active"},
        "description": {"type": "string"},
        "topic": {"type": "array"},
    },
}
TASK_SCHEMA: dict[str, Any] = {
    "title": "FhirModuleTask",
    "type": "object",
    "required": ["resourceType", "id", "status", "intent", "for", "instantiatesCanonical"],
    "properties": {
        "resourceType": {"const": "Task"},
        "id": {"type": "string", "pattern": r"^enr-[0-9a-f]{32}$"},
        "extension": {"type": "array"},
        "identifier": {"type": "array"},
        "instantiatesCanonical": {"type": "string"},
        "status": {"enum": sorted(set(TASK_STATUS.values()))},
        "intent": {"enum": ["order", "plan"]},
        "priority": {"const": "routine"},
        "code": {"type": "object"},
        "description": {"type": "string"},
        "for": {"type": "object"},
        "owner": {"type": "object"},
        "authoredOn": {"type": "string"},
        "lastModified": {"type": "string"},
    },
}


def searchset_schema(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"{resource['title']}Searchset",
        "type": "object",
        "required": ["resourceType", "type", "total", "entry"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"const": "searchset"},
            "total": {"type": "integer"},
            "link": {"type": "array"},
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["fullUrl", "resource"],
                    "properties": {
                        "fullUrl": {"type": "string"},
                        "resource": resource,
                        "search": {"type": "object"},
                    },
                },
            },
        },
    }
