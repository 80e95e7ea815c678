"""Schemathesis against every service's live OpenAPI document, with keys that get past auth.

The five services run as real processes on their own Apache Kafka and SecantusDB. For each service
every operation of its /openapi.json is called with requests Schemathesis generates from the
document, with the key of a role that holds the operation's scope (the document names it):

- valid requests, on the records of a real client (a referral, its trajectory, an appointment,
  consents, an enrolment with homework), so that commands reach the domain and not only the
  "no such trajectory" answer;
- valid requests for the operations whose path names no record of that client;
- invalid requests (Schemathesis' negative mode): wrong types, patterns, missing fields.

Every answer must not be a server error (5xx) and must match the response schema the document
gives for its status code. Bounded and deterministic: a few examples per operation, Hypothesis
derandomised, no shrinking, no stateful sequences.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ketenbus.devstack import access
from ketenbus.devstack.chain_client import ChainClient
from ketenbus.devstack.stack import SERVICES, EmbeddedStack

schemathesis = pytest.importorskip(
    "schemathesis",
    reason="schemathesis is not installed (it belongs in the root pyproject's dev group)",
)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

pytestmark = [pytest.mark.stack, pytest.mark.chain]

ORGANISATION, REFERRER = "welzijn-utrecht", "huisarts-de-linde"
# The role whose key carries each scope's family, at the organisation that owns the records.
ROLE_OF = {
    "referrals": (REFERRER, "referrer"),
    "trajectories": (ORGANISATION, "worker"),
    "clients": (ORGANISATION, "worker"),
    "enrolments": (ORGANISATION, "portal"),
    "analytics": (ORGANISATION, "manager"),
    "notifications": (ORGANISATION, "notifications"),
    "signals": (ORGANISATION, "worker"),
    # A scope whose family is held by two roles: by its full name.
    "signals:submit": (access.CREDITORS[0], "creditor"),
}
# Examples per operation and kind of request; KETENBUS_FUZZ_EXAMPLES raises it for a longer run.
EXAMPLES = int(os.environ.get("KETENBUS_FUZZ_EXAMPLES", "5"))
CHECKS = [not_a_server_error, response_schema_conformance]
# Erasing the real client would leave nothing for the operations after it.
GENERATED_IDS_ONLY = {("POST", "/v1/clients/{client_ref}/erasure")}
# A client's enrolments, as JSON or as FHIR Tasks, open with the client's own token only.
CLIENT_TOKEN_ONLY = ("/v1/enrolments", "/v1/fhir/Task")
# Where a path parameter names another record in one service than in the others.
RECORD_OF = {("learning", "task_id"): "enrolment_task_id"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    home = tmp_path_factory.mktemp("api-fuzz")
    stack = EmbeddedStack(
        home / "stack", partners=list(access.KAFKA_PARTNERS), outlive_caller=False
    )
    stack.start_infrastructure(timeout=120)
    try:
        # The fuzzer refers far more often than a partner may.
        stack.start_services(
            SERVICES, {"REFERRAL_BURST": "100000", "REFERRAL_STATUS_BURST": "100000"}
        )
        stack.wait_ready(SERVICES, timeout=120)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
async def records(stack: EmbeddedStack) -> dict[str, str]:
    """A real client's records, for the path parameters of the first kind of request."""
    chain = ChainClient(stack.urls(), stack.api_token)
    try:
        referral = await chain.refer(
            REFERRER,
            {
                "referrer_type": "gp",
                "referrer_reference": "HDL-FUZZ-1",
                "topic": "debts_material",
                "client": {
                    "name": "Fenna Hoekstra",
                    "date_of_birth": "1979-08-21",
                    "postcode": "3512 JE",
                    "phone": "06-13572468",
                    "email": "fenna.hoekstra@example.org",
                    "language": "nl",
                    "preferred_channel": "sms",
                },
                "consent": {
                    "given_by": "client",
                    "purposes": ["referral_feedback", "debt_counselling", "reminders"],
                    "granted_at": "2026-03-02T09:10:00+01:00",
                },
            },
            idempotency_key=f"fuzz-{uuid.uuid4().hex}",
        )
        trajectory = await chain.trajectory_for(ORGANISATION, referral["referral_id"])
        trajectory_id, client_ref = trajectory["trajectory_id"], trajectory["client_ref"]
        appointment = await chain.schedule(
            ORGANISATION, trajectory_id, datetime.now(UTC) + timedelta(days=2)
        )
        module = await chain.assign_module(ORGANISATION, trajectory_id, "grip-op-je-geld")
        enrolment = await chain.enrolment(ORGANISATION, client_ref, module["enrolment_id"])
        # A client's enrolments open with the client's own portal token only.
        portal_token = await chain.portal_token(ORGANISATION, client_ref)
        homework = await chain.http.post(
            f"{stack.service_url('learning')}/v1/enrolments/{enrolment['enrolment_id']}"
            "/steps/huiswerk-kasboek/homework",
            json={"answer": "Ik heb een week lang alles opgeschreven."},
            headers=bearer(portal_token),
        )
        consents = await chain.http.get(
            f"{stack.service_url('intake')}/v1/clients/{client_ref}/consents",
            headers=bearer(stack.api_token(ORGANISATION, "worker")),
        )
    finally:
        await chain.close()
    return {
        "referral_id": referral["referral_id"],
        "task_id": referral["referral_id"].replace("_", "-", 1),  # the FHIR door's Task
        "trajectory_id": trajectory_id,
        "client_ref": client_ref,
        "appointment_id": appointment["appointment_id"],
        "enrolment_id": enrolment["enrolment_id"],
        "enrolment_task_id": enrolment["enrolment_id"].replace("_", "-", 1),  # learning's Task
        "submission_id": homework.json()["submission_id"],
        "consent_id": consents.json()[0]["consent_id"],
        "module_id": "grip-op-je-geld",
        "portal_token": portal_token,  # names no path parameter: the client's credential
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def key_for(stack: EmbeddedStack, operation: Any, records: dict[str, str]) -> dict[str, str]:
    requirement = operation.definition.raw.get("security") or []
    scopes = [scope for entry in requirement for scope in entry.get("HTTPBearer", [])]
    if not scopes:
        return {}  # a public route (/healthz, /docs, ...)
    if scopes[0].startswith("enrolments:") and operation.path.startswith(CLIENT_TOKEN_ONLY):
        return bearer(records["portal_token"])
    organisation, role = ROLE_OF.get(scopes[0]) or ROLE_OF[scopes[0].split(":")[0]]
    return bearer(stack.api_token(organisation, role))


def takes_input(operation: Any) -> bool:
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


def fuzz(operation: Any, strategy: Any, headers: dict[str, str]) -> tuple[list[str], set[int]]:
    """Run the cases; return the distinct failures and the status codes seen."""
    failures: dict[str, str] = {}
    statuses: set[int] = set()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        try:
            response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
            statuses.add(response.status_code)
        except (Exception, BaseExceptionGroup) as failure:  # FailureGroup is a BaseException
            text = f"{type(failure).__name__}: {failure}"
            failures.setdefault(text.splitlines()[0] + text[:300], text[:3000])

    run()
    return list(failures.values()), statuses


@pytest.mark.parametrize("service", SERVICES)
def test_no_server_error_and_every_answer_as_documented(stack, records, service):
    schema = schemathesis.openapi.from_url(f"{stack.service_url(service)}/openapi.json")
    problems: list[str] = []
    past_auth: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        headers = key_for(stack, operation, records)
        label = f"{operation.method.upper()} {operation.path}"
        ids = {
            name: records[RECORD_OF.get((service, name), name)]
            for name in records
            if f"{{{name}}}" in operation.path
            and (operation.method.upper(), operation.path) not in GENERATED_IDS_ONLY
        }
        # On the real records where the path names them (generated ids only find nothing, which
        # tests/test_security_http.py covers), else on generated ones.
        if ids:
            kinds = [("real records", operation.as_strategy(path_parameters=ids))]
        else:
            kinds = [("generated", operation.as_strategy())]
        if takes_input(operation):
            kinds.append(
                (
                    "invalid",
                    operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
                )
            )
        for kind, strategy in kinds:
            failures, statuses = fuzz(operation, strategy, headers)
            problems += [f"{label} ({kind}):\n{failure}" for failure in failures]
            if kind != "invalid":
                past_auth.setdefault(label, set()).update(statuses)
    assert problems == [], "\n\n".join(problems)
    # The keys were right: every operation answered something besides 401 and 403.
    assert {label: codes for label, codes in past_auth.items() if codes <= {401, 403}} == {}
    with httpx.Client(timeout=10) as http:
        ready = http.get(f"{stack.service_url(service)}/readyz")
    assert ready.status_code == 200, ready.text  # and the service is still well
