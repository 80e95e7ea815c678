"""Learning's Koppeltaal view: the catalogue as FHIR ActivityDefinitions, a client's modules
as Tasks. Every resource is parsed back with fhir.resources' R4B models (valid FHIR R4).

First the mapping without a server: every enrolment status, the intent, the progress. Then
through the real learning process on Apache Kafka and SecantusDB: modules are assigned by
putting ModuleAssigned on trajectory's topic as trajectory's relay would, the client works in
the portal's JSON API, and reads their Tasks with their own portal token.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.activitydefinition import ActivityDefinition
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.task import Task

from ketenbus.contracts.events import ModuleAssigned
from ketenbus.contracts.values import Language, new_id
from ketenbus.devstack.chain_client import eventually
from ketenbus.kit.fhir import FHIR_JSON
from ketenbus.learning import fhir
from ketenbus.learning.catalogue import Catalogue
from ketenbus.learning.domain import Enrolment, EnrolmentStatus

from .relay import publish

CATALOGUE = Catalogue.load()
ORG = "welzijn-utrecht"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def task(enrolment: Enrolment) -> dict[str, Any]:
    made = fhir.task_of(enrolment, CATALOGUE.module(enrolment.module_id))
    Task.model_validate(made)  # valid FHIR R4, by the library's model
    return made


def progress(made: dict[str, Any]) -> tuple[int, int]:
    extension = next(e for e in made["extension"] if e["url"] == fhir.PROGRESS)
    counts = {part["url"]: part["valueUnsignedInt"] for part in extension["extension"]}
    return counts["stepsCompleted"], counts["stepsTotal"]


def assigned(module_id: str = "grip-op-je-geld", at: datetime = NOW) -> Enrolment:
    return Enrolment.assign(
        enrolment_id=new_id("enr"),
        client_ref=new_id("cl"),
        organisation_id=ORG,
        module=CATALOGUE.modules[module_id],
        language=Language.EN,
        trajectory_id=new_id("trj"),
        at=at,
    )


# ---------------------------------------------------------------------- the mapping


def test_a_module_s_life_reads_as_its_task_status():
    module = CATALOGUE.modules["grip-op-je-geld"]
    enrolment = assigned()

    made = task(enrolment)
    assert (made["status"], made["intent"], progress(made)) == ("ready", "order", (0, 6))
    assert made["id"] == enrolment.id.replace("_", "-")
    assert made["instantiatesCanonical"] == (
        "https://ketenbus.nl/fhir/ActivityDefinition/grip-op-je-geld"
    )
    assert made["description"] == "Getting a grip on your money"  # the enrolment's language
    assert made["authoredOn"] == made["lastModified"] == NOW.isoformat()

    enrolment.start(NOW + timedelta(hours=1))
    enrolment.complete_step(module, "welkom", NOW + timedelta(hours=2))
    made = task(enrolment)
    assert (made["status"], progress(made)) == ("in-progress", (1, 6))
    assert made["lastModified"] == (NOW + timedelta(hours=2)).isoformat()

    # Left idle: on hold, not cancelled; any step picks it up again.
    assert enrolment.abandon_if_idle(NOW + timedelta(days=30), timedelta(days=21))
    assert task(enrolment)["status"] == "on-hold"
    enrolment.complete_step(module, "wat-is-een-kasboek", NOW + timedelta(days=31))
    assert task(enrolment)["status"] == "in-progress"

    enrolment.complete(module, NOW + timedelta(days=32))
    made = task(enrolment)
    assert (made["status"], progress(made)) == ("completed", (2, 6))


def test_every_enrolment_status_has_a_task_status():
    assert set(fhir.TASK_STATUS) == set(EnrolmentStatus)
    assert set(fhir.TASK_SCHEMA["properties"]["status"]["enum"]) == set(fhir.TASK_STATUS.values())


def test_a_module_chosen_while_waiting_is_the_client_s_own_plan():
    chosen = Enrolment.choose(
        client_ref=new_id("cl"),
        organisation_id=ORG,
        module=CATALOGUE.modules["zelfscan-leefgebieden"],
        language=Language.NL,
        waiting=True,
        at=NOW,
    )
    made = task(chosen)
    assert (made["status"], made["intent"], progress(made)) == ("in-progress", "plan", (0, 1))


def test_the_task_names_the_client_by_reference_only():
    enrolment = assigned()
    module = CATALOGUE.modules["grip-op-je-geld"]
    enrolment.submit_homework(module, "huiswerk-kasboek", "Mijn huur is te hoog.", NOW)

    made = task(enrolment)

    who = {"type": "Patient", "identifier": {"system": fhir.CLIENT, "value": enrolment.client_ref}}
    assert made["for"] == made["owner"] == who
    said = json.dumps(made)
    assert "Mijn huur" not in said and ORG not in said and enrolment.trajectory_id not in said


def test_every_module_is_an_activity_definition_in_either_language():
    for module in CATALOGUE.modules.values():
        for language in Language:
            made = fhir.activity_definition(module, language)
            ActivityDefinition.model_validate(made)
            assert made["url"] == fhir.canonical(module.id)
            assert (made["title"], made["description"]) == (
                module.title(language),
                module.summary(language),
            )
            assert "kind" not in made  # Koppeltaal's profile leaves it out
    scan = fhir.activity_definition(CATALOGUE.modules["zelfscan-leefgebieden"], Language.NL)
    assert scan["topic"][0]["coding"][0]["code"] == "self-assessment"
    aftercare = CATALOGUE.modules["terugkijken-en-vooruitkijken"]  # a worker assigns it
    assert "topic" not in fhir.activity_definition(aftercare, Language.NL)


def test_the_docs_example_task_is_what_the_code_makes():
    """docs/learning.md shows a Task two steps into "Grip op je geld"; the same enrolment."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "learning.md").read_text("utf-8")
    shown = re.search(r"A module worked on for a day.*?```json\n(.*?)```", page, re.DOTALL)
    assert shown is not None
    module = CATALOGUE.modules["grip-op-je-geld"]
    at = datetime(2026, 3, 4, 9, 12, tzinfo=UTC)
    enrolment = Enrolment.assign(
        enrolment_id="enr_8c1d" + "0" * 28,
        client_ref="cl_5e2a" + "0" * 28,
        organisation_id=ORG,
        module=module,
        language=Language.NL,
        trajectory_id=new_id("trj"),
        at=at,
    )
    enrolment.start(at + timedelta(days=1))
    enrolment.complete_step(module, "welkom", at + timedelta(days=1, minutes=5))
    enrolment.complete_step(module, "wat-is-een-kasboek", at + timedelta(days=1, minutes=12))

    assert json.loads(shown.group(1)) == task(enrolment)


# ---------------------------------------------------------------------- through the service


class Portal:
    """Learning's HTTP API as the client portal (and the worker issuing its token) calls it."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.url = stack.service_url("learning")
        self.http = httpx.AsyncClient(timeout=10)

    async def token_for(self, client_ref: str) -> str:
        worker = {"Authorization": f"Bearer {self.stack.api_token(ORG, 'worker')}"}

        async def issued() -> str | None:
            answer = await self.http.post(
                f"{self.url}/v1/clients/{client_ref}/portal-tokens", headers=worker
            )
            return answer.json()["token"] if answer.status_code == 201 else None

        return await eventually(issued, f"learning to know {client_ref}")

    async def get(self, path: str, token: str | None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.get(f"{self.url}{path}", headers=headers, params=params)

    async def fhir(self, path: str, token: str, **params: str) -> dict[str, Any]:
        answer = await self.get(path, token, **params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == FHIR_JSON
        return answer.json()

    async def task(self, enrolment_id: str, token: str) -> dict[str, Any]:
        made = await self.fhir(f"/v1/fhir/Task/{enrolment_id.replace('_', '-')}", token)
        Task.model_validate(made)
        return made

    async def post(self, path: str, token: str, **body: Any) -> dict[str, Any]:
        answer = await self.http.post(
            f"{self.url}{path}", json=body or None, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code < 300, answer.text
        return answer.json()

    async def not_found(self, path: str, token: str, **params: str) -> dict[str, Any]:
        answer = await self.get(path, token, **params)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == FHIR_JSON
        OperationOutcome.model_validate(answer.json())
        return answer.json()


async def assign(stack: Any, client_ref: str, module_id: str, at: datetime) -> str:
    enrolment_id = new_id("enr")
    event = ModuleAssigned(
        trajectory_id=new_id("trj"),
        client_ref=client_ref,
        organisation_id=ORG,
        enrolment_id=enrolment_id,
        module_id=module_id,
        language=Language.NL,
        assigned_at=at,
    )
    await publish(stack.kafka, event, "trajectory", datetime.now(UTC))
    return enrolment_id


@pytest.mark.stack
@pytest.mark.chain
async def test_a_client_reads_their_modules_as_tasks_and_no_one_else_s(chain):
    # Idle modules are looked for five times a second; one assigned long ago is idle at once.
    stack = chain(["learning"], extra_env={"ABANDON_CHECK_SECONDS": "0.2"})
    portal = Portal(stack)
    anouk, yusuf = new_id("cl"), new_id("cl")
    now = datetime.now(UTC)
    try:
        money = await assign(stack, anouk, "grip-op-je-geld", now)
        stress = await assign(stack, anouk, "omgaan-met-stress", now - timedelta(days=30))
        theirs = await assign(stack, yusuf, "voor-jezelf-opkomen", now)
        mine, other = await portal.token_for(anouk), await portal.token_for(yusuf)

        # Assigned: ready, nothing done yet; it instantiates the catalogue's definition.
        task = await portal.task(money, mine)
        assert (task["status"], task["intent"], progress(task)) == ("ready", "order", (0, 6))
        assert task["for"]["identifier"]["value"] == anouk
        definition = await portal.fhir("/v1/fhir/ActivityDefinition/grip-op-je-geld", mine)
        assert task["instantiatesCanonical"] == definition["url"]

        # Started, a step done, then finished early: in-progress, then completed.
        enrolment = f"/v1/enrolments/{money}"
        await portal.post(f"{enrolment}/start", mine)
        assert (await portal.task(money, mine))["status"] == "in-progress"
        await portal.post(f"{enrolment}/steps/welkom/complete", mine)
        task = await portal.task(money, mine)
        assert (task["status"], progress(task)) == ("in-progress", (1, 6))
        await portal.post(f"{enrolment}/complete", mine)
        task = await portal.task(money, mine)
        assert (task["status"], progress(task)) == ("completed", (1, 6))

        # Left idle: on hold; a step later it is in progress again.
        async def on_hold() -> dict[str, Any] | None:
            found = await portal.task(stress, mine)
            return found if found["status"] == "on-hold" else None

        await eventually(on_hold, "the idle module to be counted as left")
        await portal.post(f"/v1/enrolments/{stress}/steps/wat-is-stress/complete", mine)
        assert (await portal.task(stress, mine))["status"] == "in-progress"

        # The search: the client's own Tasks (oldest assignment first), a status among them,
        # never another client's.
        bundle = await portal.fhir("/v1/fhir/Task", mine)
        Bundle.model_validate(bundle)
        assert bundle["total"] == 2
        assert [e["resource"]["identifier"][0]["value"] for e in bundle["entry"]] == [
            stress,
            money,
        ]
        first = bundle["entry"][0]
        assert first["fullUrl"] == f"{portal.url}/v1/fhir/Task/{first['resource']['id']}"
        done = await portal.fhir("/v1/fhir/Task", mine, status="completed,cancelled")
        assert [e["resource"]["id"] for e in done["entry"]] == [money.replace("_", "-")]
        own = await portal.fhir("/v1/fhir/Task", mine, **{"patient:identifier": anouk})
        assert own["total"] == 2
        await portal.not_found("/v1/fhir/Task", mine, **{"patient:identifier": yusuf})

        # Another client's Task does not exist for this token, nor does a made-up one.
        await portal.not_found(f"/v1/fhir/Task/{theirs.replace('_', '-')}", mine)
        assert (await portal.task(theirs, other))["status"] == "ready"
        await portal.not_found(f"/v1/fhir/Task/enr-{'0' * 32}", mine)
        await portal.not_found("/v1/fhir/Task/no-such-task", mine)

        # No token: 401. The organisation's portal key reaches no client's Task (403).
        for path in ("/v1/fhir/Task", f"/v1/fhir/Task/{money.replace('_', '-')}"):
            assert (await portal.get(path, None)).status_code == 401
            organisation = await portal.get(path, stack.api_token(ORG, "portal"))
            assert organisation.status_code == 403
            assert "portal token" in organisation.json()["detail"]
    finally:
        await portal.http.aclose()


@pytest.mark.stack
@pytest.mark.chain
async def test_the_activity_definitions_are_the_catalogue(chain):
    stack = chain(["learning"])
    portal = Portal(stack)
    key = stack.api_token(ORG, "portal")  # the catalogue is the same for everyone
    try:
        bundle = await portal.fhir("/v1/fhir/ActivityDefinition", key, language="en")
        Bundle.model_validate(bundle)
        listed = await portal.get("/v1/modules", key, language="en")

        assert bundle["total"] == len(listed.json()) == len(CATALOGUE.modules)
        assert {e["resource"]["id"]: e["resource"]["title"] for e in bundle["entry"]} == {
            m["module_id"]: m["title"] for m in listed.json()
        }
        for entry in bundle["entry"]:
            assert entry["resource"]["language"] == "en"
            read = await portal.fhir(entry["fullUrl"].removeprefix(portal.url), key, language="en")
            assert read == entry["resource"]
        await portal.not_found("/v1/fhir/ActivityDefinition/no-such-module", key)
        unauthenticated = await portal.get("/v1/fhir/ActivityDefinition", None)
        assert unauthenticated.status_code == 401
    finally:
        await portal.http.aclose()
