"""Learning in Koppeltaal's language, for a portal or module platform that speaks FHIR R4: the
catalogue as ActivityDefinitions, a client's modules as Tasks. Read only, and no wider than
the JSON routes it mirrors: the catalogue for whoever reads GET /v1/modules (the
organisation's portal key or a client's token), a client's Tasks for that client's own portal
token only, as GET /v1/enrolments. Another client's Task does not exist (404); an
organisation's key is refused (403) and no token is 401, as on every route.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from ketenbus.contracts.values import Language
from ketenbus.kit.fhir import answer, described, not_found, record_id, refusal
from ketenbus.learning import fhir
from ketenbus.learning.api import CatalogueReader, Modules, PortalReader, Uow, own_enrolment

router = APIRouter(prefix="/v1/fhir", tags=["fhir"])

# Any FHIR id is asked for; one that is not a module or an enrolment of ours is not found.
FhirId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
ENROLMENT_TASK = re.compile(r"^enr-[0-9a-f]{32}$")
# The patient by identifier, `[system|]value`: the client's pseudonymous reference.
PatientToken = Annotated[
    str | None,
    Query(
        alias="patient:identifier",
        pattern=rf"^({re.escape(fhir.CLIENT)}\|)?cl_[0-9a-f]{{32}}$",
        description="the client's reference (`cl_...`), optionally after its system and `|`",
    ),
]
StatusToken = Annotated[
    str | None,
    Query(
        alias="status",
        pattern=r"^[a-z-]{1,20}(,[a-z-]{1,20}){0,9}$",
        description="Task.status codes, comma-separated (any of them)",
    ),
]


@router.get(
    "/ActivityDefinition",
    response_class=Response,
    responses={
        200: described(
            fhir.searchset_schema(fhir.ACTIVITY_DEFINITION_SCHEMA),
            "The module catalogue, a searchset Bundle",
        )
    },
)
async def activity_definitions(
    request: Request, caller: CatalogueReader, catalogue: Modules, language: Language = Language.NL
) -> Response:
    """Every module of the catalogue (GET /v1/modules) as an ActivityDefinition, its title
    and description in the language asked for."""
    definitions = [fhir.activity_definition(m, language) for m in catalogue.modules.values()]
    return _searchset(request, definitions)


@router.get(
    "/ActivityDefinition/{module_id}",
    response_class=Response,
    responses={
        200: described(fhir.ACTIVITY_DEFINITION_SCHEMA, "A module of the catalogue"),
        404: refusal("No such module in the catalogue"),
    },
)
async def read_activity_definition(
    module_id: FhirId,
    caller: CatalogueReader,
    catalogue: Modules,
    language: Language = Language.NL,
) -> Response:
    module = catalogue.module(module_id)
    if module is None:
        return not_found("no such ActivityDefinition in the catalogue")
    return answer(fhir.activity_definition(module, language))


@router.get(
    "/Task",
    response_class=Response,
    responses={
        200: described(
            fhir.searchset_schema(fhir.TASK_SCHEMA), "The client's modules, a searchset Bundle"
        ),
        404: refusal("The patient asked for is not this portal token's client"),
    },
)
async def tasks(
    request: Request,
    caller: PortalReader,
    uow: Uow,
    catalogue: Modules,
    patient: PatientToken = None,
    status: StatusToken = None,
) -> Response:
    """The portal token's client's modules, each a Task (oldest first). Another client's
    reference finds no patient (404), as GET /v1/enrolments answers; a status no Task has
    matches nothing."""
    if patient is not None and patient.rsplit("|", 1)[-1] != caller.client_ref:
        return not_found("no such patient for this portal token")
    async with uow.reading() as tx:
        found = await tx.enrolments.of_client(caller.organisation_id, caller.client_ref)
    matches = [fhir.task_of(e, catalogue.module(e.module_id)) for e in found]
    if status is not None:
        wanted = set(status.split(","))
        matches = [task for task in matches if task["status"] in wanted]
    return _searchset(request, matches)


@router.get(
    "/Task/{task_id}",
    response_class=Response,
    responses={
        200: described(fhir.TASK_SCHEMA, "Where the client stands in the module"),
        404: refusal("No such Task for this portal token"),
    },
)
async def read_task(
    task_id: FhirId, caller: PortalReader, uow: Uow, catalogue: Modules
) -> Response:
    """One of the client's modules as a Task: `enr-<hex>`, the enrolment's id with a hyphen."""
    if ENROLMENT_TASK.match(task_id):
        async with uow.reading() as tx:
            enrolment = await own_enrolment(tx, record_id(task_id), caller)
        if enrolment is not None:
            return answer(fhir.task_of(enrolment, catalogue.module(enrolment.module_id)))
    return not_found("no such Task for this portal token")


def _searchset(request: Request, matches: list[dict[str, Any]]) -> Response:
    """The matches of this search, each with the address it is read at (its fullUrl)."""
    base = f"{str(request.base_url).rstrip('/')}{router.prefix}"
    return answer(
        fhir.searchset(
            [(f"{base}/{r['resourceType']}/{r['id']}", r) for r in matches], str(request.url)
        )
    )
