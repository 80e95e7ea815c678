"""HTTP security of the five services, through real processes on their own engines.

What is proved here (docs/security.md says the same in prose):

- Every operation in every service's live OpenAPI document refuses a request without a key, with
  an unknown key, with a stored hash used as a key (401), and with a key that lacks the scope
  the document names for it (403); a key with that scope gets past both. The routes that answer
  without a key are listed below, each with its reason, and no route escapes the document.
- The opt-out link (notifications) is its own credential: a forged or altered token changes
  nothing; a genuine one works.
- An organisation sees and changes nothing of another's: with real data of one welfare
  organisation (a referral, its trajectory, an appointment, consents, an enrolment with
  homework, notification preferences, reminders and figures), every read and write endpoint
  called with another organisation's keys answers 404 (or an empty list), never shows any of
  the first one's data, and leaves it as it was.
- The key file holds only hashes; no key reaches a log or a service's environment.
- The partner front door is rate-limited per organisation: 429 with Retry-After, which is true.

One stack for the module (starting five processes is the slow part).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pymongo import AsyncMongoClient

from ketenbus.contracts import sealing
from ketenbus.contracts.values import Channel
from ketenbus.devstack import access, service_keys
from ketenbus.devstack.chain_client import eventually
from ketenbus.devstack.stack import SERVICES, EmbeddedStack
from ketenbus.kit.auth import append_record, issue_key
from ketenbus.kit.auth import main as auth_main
from ketenbus.kit.ratelimit import RateLimit
from ketenbus.notifications import opt_out_links

pytestmark = [pytest.mark.stack, pytest.mark.chain]

A, B = "welzijn-utrecht", "welzijn-amersfoort"  # two welfare organisations
A_GP, B_GP = "huisarts-de-linde", "huisarts-oosterpoort"  # a referrer of each
RATED = "gemeente-utrecht"  # a referrer only the rate-limit test uses
KEYS_OF = "welzijn-heuvelrug"  # holds a key in every role: the scope checks use its keys
# The portal belongs to a client: the portal probes of A's enrolments use the token of a
# client of this third organisation (a client of B would put figures in B's, which stay empty).
C = KEYS_OF

# Routes that answer without an API key, on purpose. Anything else must demand one.
PUBLIC: dict[str, str] = {
    "/healthz": "liveness probe for the orchestrator: says only that the process is alive",
    "/readyz": "readiness probe: which dependencies answer (database, broker), no data",
    "/metrics": "Prometheus scrapes it without a credential (deploy/prometheus, the "
    "PodMonitor); counters and per-organisation gauges, never a person or a record id "
    "(checked below); kept off the public ingress (docs/security.md)",
    "/asyncapi": "the event contracts, as a page: public documentation",
    "/asyncapi.json": "the event contracts: public documentation",
    "/openapi.json": "the HTTP contract: public documentation",
    "/docs": "Swagger UI over /openapi.json: public documentation",
    "/docs/oauth2-redirect": "part of Swagger UI",
    "/redoc": "ReDoc over /openapi.json: public documentation",
}
PUBLIC_OF: dict[str, dict[str, str]] = {
    "analytics": {
        "/dashboard": "the dashboard's page without any figures: it asks for the manager's "
        "key in the browser and loads the figures with it (/v1/dashboard-data)",
    },
}
# Routes the OpenAPI document leaves out on purpose, with the credential they take instead.
UNDOCUMENTED: dict[tuple[str, str, str], str] = {
    ("notifications", "GET", "/v1/opt-out/{token}"): "the opt-out link's HMAC token",
    ("notifications", "POST", "/v1/opt-out/{token}"): "the opt-out link's HMAC token",
}

ID = re.compile(r"\b(?:cl|ref|trj|apt|enr|hws|cns|kpi)_[0-9a-f]{32}\b")
CLIENT = {
    "name": "Annemiek Oosterhuis",
    "date_of_birth": "1983-05-17",
    "postcode": "3512 JE",
    "phone": "06-24681357",
    "email": "annemiek.oosterhuis@example.org",
    "language": "nl",
    "preferred_channel": "email",
}
PERSONAL = [
    CLIENT["name"],
    "Oosterhuis",
    CLIENT["phone"],
    CLIENT["phone"].replace("-", ""),
    CLIENT["email"],
]


def referral_of(client: dict[str, Any], reference: str) -> dict[str, Any]:
    return {
        "referrer_type": "gp",
        "referrer_reference": reference,
        "topic": "debts_material",
        "client": client,
        "consent": {
            "given_by": "client",
            "purposes": ["referral_feedback", "debt_counselling", "reminders"],
            "granted_at": "2026-03-02T09:10:00+01:00",
        },
    }


# ---------------------------------------------------------------------- the stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    home = tmp_path_factory.mktemp("security-http")
    stack = EmbeddedStack(
        home / "stack", partners=list(access.KAFKA_PARTNERS), outlive_caller=False
    )
    stack.start_infrastructure(timeout=120)
    try:
        stack.start_services(
            SERVICES,
            {
                # Small buckets, so the rate-limit test reaches them quickly; the other tests
                # stay within them (each organisation has its own).
                "REFERRAL_RATE_PER_MINUTE": "30",
                "REFERRAL_BURST": "4",
                "REFERRAL_STATUS_RATE_PER_MINUTE": "60",
                "REFERRAL_STATUS_BURST": "6",
                # As in production: the homework keys wrapped (the devstack sets none yet).
                "LEARNING_MASTER_KEY": sealing.key_to_text(sealing.new_key()),
            },
        )
        stack.wait_ready(SERVICES, timeout=120)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def openapi(stack: EmbeddedStack) -> dict[str, dict[str, Any]]:
    return {
        name: httpx.get(f"{stack.service_url(name)}/openapi.json", timeout=10).json()
        for name in SERVICES
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    """Organisation A's data, made through the APIs as A's people would."""

    stack: EmbeddedStack
    http: httpx.AsyncClient
    ids: dict[str, str] = field(default_factory=dict)
    idempotency_key: str = ""
    # The portal is a client's: per organisation, the portal token of a client of its own.
    portal_tokens: dict[str, str] = field(default_factory=dict)

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.service_url(service)}{path.format(**self.ids)}"

    def key(self, organisation: str, role: str) -> dict[str, str]:
        if role == "portal":
            return bearer(self.portal_tokens[organisation])
        return bearer(self.stack.api_token(organisation, role))

    async def client_in_learning(self, organisation: str, client_ref: str) -> str:
        """The portal token the worker issues once learning knows the client (an enrolment
        arrives over the bus)."""

        async def issued() -> Any:
            answer = await self.call(
                "POST",
                "learning",
                f"/v1/clients/{client_ref}/portal-tokens",
                organisation,
                "worker",
            )
            return answer.json()["token"] if answer.status_code == 201 else None

        return await eventually(issued, f"a portal token for a client of {organisation}")

    async def call(
        self, method: str, service: str, path: str, organisation: str, role: str, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.key(organisation, role), **kwargs.pop("headers", {})}
        return await self.http.request(method, self.url(service, path), headers=headers, **kwargs)

    async def ok(self, *args: Any, **kwargs: Any) -> Any:
        response = await self.call(*args, **kwargs)
        assert response.status_code < 300, (args, response.status_code, response.text)
        return response.json()

    def secrets(self) -> list[str]:
        """What of A no one else may see: its records' ids, its client, its name."""
        return [*self.ids.values(), *PERSONAL, A]


@pytest.fixture(scope="module")
async def world(stack: EmbeddedStack) -> AsyncIterator[World]:
    async with httpx.AsyncClient(timeout=30) as http:
        world = World(stack, http, idempotency_key=f"hdl-{uuid.uuid4().hex}")
        referral = await world.ok(
            "POST",
            "intake",
            "/v1/referrals",
            A_GP,
            "referrer",
            json=referral_of(CLIENT, "HDL-SEC-1"),
            headers={"Idempotency-Key": world.idempotency_key},
        )
        assert referral["status"] == "accepted", referral
        world.ids["referral_id"] = referral["referral_id"]

        async def opened() -> Any:
            found = await world.ok(
                "GET", "trajectory", "/v1/trajectories", A, "worker", params=world.ids
            )
            return found[0] if found else None

        trajectory = await eventually(opened, "A's trajectory")
        world.ids["trajectory_id"] = trajectory["trajectory_id"]
        world.ids["client_ref"] = trajectory["client_ref"]
        # The same referral as a FHIR Task (a FHIR id has no underscore).
        world.ids["task_id"] = referral["referral_id"].replace("_", "-", 1)
        starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
        appointment = await world.ok(
            "POST",
            "trajectory",
            "/v1/trajectories/{trajectory_id}/appointments",
            A,
            "worker",
            json={"starts_at": starts.isoformat(), "goal": "Samen de brieven doornemen"},
        )
        world.ids["appointment_id"] = appointment["appointment_id"]
        consents = await world.ok("GET", "intake", "/v1/clients/{client_ref}/consents", A, "worker")
        world.ids["consent_id"] = consents[0]["consent_id"]
        module = await world.ok(
            "POST",
            "trajectory",
            "/v1/trajectories/{trajectory_id}/modules",
            A,
            "worker",
            json={"module_id": "grip-op-je-geld"},
        )
        world.ids["enrolment_id"] = module["enrolment_id"]
        # The same enrolment as a Koppeltaal FHIR Task.
        world.ids["enrolment_task_id"] = module["enrolment_id"].replace("_", "-", 1)
        world.portal_tokens[A] = await world.client_in_learning(A, world.ids["client_ref"])
        world.portal_tokens[C] = await a_client_of_c_in_learning(world)
        homework = await world.ok(
            "POST",
            "learning",
            "/v1/enrolments/{enrolment_id}/steps/huiswerk-kasboek/homework",
            A,
            "portal",
            json={"answer": "De vaste lasten zijn hoger dan ik dacht."},
        )
        world.ids["submission_id"] = homework["submission_id"]

        # Wait until every service has what A's events tell it, so nothing changes while the
        # other organisation is at work.
        async def settled() -> Any:
            trajectory = await world.ok(
                "GET", "trajectory", "/v1/trajectories/{trajectory_id}", A, "worker"
            )
            preferences = await world.call(
                "GET", "notifications", "/v1/clients/{client_ref}/preferences", A, "notifications"
            )
            reminders = await world.ok(
                "GET",
                "notifications",
                "/v1/reminders",
                A,
                "notifications",
                params={"client_ref": world.ids["client_ref"]},
            )
            figures = await world.ok("GET", "analytics", "/v1/dashboard-data", A, "manager")
            return (
                trajectory["homework"]
                and preferences.status_code == 200
                and reminders
                and any(row["referrals_received"] for row in figures["years"])
            )

        await eventually(settled, "A's data in every service", timeout=60)
        yield world


async def a_client_of_c_in_learning(world: World) -> str:
    """C's own client, with a module: the portal token the probes of A's enrolments use."""
    other = {**CLIENT, "name": "Cornelis Zeisterbos", "email": "c.zeisterbos@example.org"}
    other["postcode"], other["phone"] = "3701 ZB", "06-99887766"
    made = await world.ok(
        "POST",
        "intake",
        "/v1/referrals",
        A_GP,
        "referrer",
        json=referral_of(other, "HDL-SEC-C"),
        headers={"Idempotency-Key": f"hdl-{uuid.uuid4().hex}"},
    )

    async def opened() -> Any:
        params = {"referral_id": made["referral_id"]}
        found = await world.ok("GET", "trajectory", "/v1/trajectories", C, "worker", params=params)
        return found[0] if found else None

    trajectory = await eventually(opened, "C's trajectory")
    await world.ok(
        "POST",
        "trajectory",
        f"/v1/trajectories/{trajectory['trajectory_id']}/modules",
        C,
        "worker",
        json={"module_id": "omgaan-met-stress"},
    )
    return await world.client_in_learning(C, trajectory["client_ref"])


# ---------------------------------------------------------------------- authentication


def value_for(parameter: dict[str, Any]) -> str:
    """A value of the right form for a path or query parameter (`trj_000...`), else `x`."""
    pattern = parameter.get("schema", {}).get("pattern", "")
    prefixed = re.fullmatch(r"\^([a-z]+)([_-])\[0-9a-f\]\{32\}\$", pattern)
    if prefixed:
        return f"{prefixed.group(1)}{prefixed.group(2)}{'0' * 32}"
    if pattern.startswith("^[a-z0-9]"):
        return "no-such-thing"
    return "x"


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def filled(path: str, operation: dict[str, Any]) -> tuple[str, dict[str, str]]:
    query = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace(f"{{{parameter['name']}}}", value_for(parameter))
        elif parameter["in"] == "query" and parameter.get("required"):
            query[parameter["name"]] = value_for(parameter)
    return path, query


def test_no_route_of_a_service_is_left_out_of_its_openapi(openapi):
    """The walk below goes by the OpenAPI documents, so a route hidden from them
    (include_in_schema=False) would escape it: each hidden one must be listed with its
    credential."""
    import importlib

    hidden, missing = [], []
    for name in SERVICES:
        service = importlib.import_module(f"ketenbus.{name}.app").service
        for router in service.routers:
            for route in router.routes:
                assert isinstance(route, APIRoute), route
                for method in route.methods:
                    if not route.include_in_schema:
                        hidden.append((name, method, route.path))
                    elif route.path not in openapi[name]["paths"]:
                        missing.append((name, method, route.path))
    assert missing == []
    assert sorted(hidden) == sorted(UNDOCUMENTED)


# Routes that open with a client's portal token only, never with an API key: a key with the
# scope is refused too (403), so that the organisation's portal key reaches no client's data.
CLIENT_TOKEN_ONLY = {
    ("learning", re.compile(r"^/v1/enrolments(/|$)")),
    ("learning", re.compile(r"^/v1/fhir/Task(/|$)")),  # the same enrolments, as FHIR
}


def client_token_only(service: str, path: str) -> bool:
    return any(name == service and route.match(path) for name, route in CLIENT_TOKEN_ONLY)


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_needs_a_key_with_its_scope(stack, openapi, world, service):
    base = stack.service_url(service)
    public = PUBLIC | PUBLIC_OF.get(service, {})
    stored = access.provision(stack.home).read_text().splitlines()
    a_hash = json.loads(stored[0])
    forged_keys = {
        "no key": {},
        "an unknown key": bearer("kb_000000000000_" + "A" * 43),
        "a stored hash as the key": bearer(a_hash["sha256"]),
        "a stored hash in a key's place": bearer(f"kb_{a_hash['key_id']}_{a_hash['sha256']}"),
        "another scheme": {"Authorization": "Basic " + "a2I6a2I="},
    }
    problems: list[str] = []
    checked = 0
    with httpx.Client(timeout=10) as http:
        for method, path, operation in operations(openapi[service]):
            if path in public:
                if operation.get("security"):
                    problems.append(f"{method} {path} is public but documents a security scheme")
                continue
            checked += 1
            requirement = operation.get("security", [])
            scopes = [scope for entry in requirement for scope in entry.get("HTTPBearer", [])]
            if len(scopes) != 1:
                problems.append(f"{method} {path} names no single scope: {requirement}")
                continue
            scope = scopes[0]
            url_path, query = filled(path, operation)
            url = f"{base}{url_path}"
            for what, headers in forged_keys.items():
                answer = http.request(method, url, params=query, headers=headers)
                if answer.status_code != 401 or answer.headers.get("www-authenticate") != "Bearer":
                    problems.append(f"{method} {path} with {what}: {answer.status_code}")
            allowed = []
            by_client = client_token_only(service, path)
            if by_client:
                answer = http.request(method, url, params=query, headers=world.key(C, "portal"))
                if answer.status_code in (401, 403) or answer.status_code >= 500:
                    problems.append(f"{method} {path} with a client's token: {answer.status_code}")
            for role, granted in access.ROLES.items():
                # Creditors are organisations of their own, never a welfare organisation.
                holder = access.CREDITORS[0] if role == "creditor" else KEYS_OF
                answer = http.request(
                    method, url, params=query, headers=bearer(stack.api_token(holder, role))
                )
                if scope in granted and by_client:
                    allowed.append(role)
                    if answer.status_code != 403 or "portal token" not in answer.json()["detail"]:
                        problems.append(
                            f"{method} {path} with a {role} key, not a client's token: "
                            f"{answer.status_code} {answer.text[:100]}"
                        )
                elif scope in granted:
                    allowed.append(role)
                    if answer.status_code in (401, 403) or answer.status_code >= 500:
                        problems.append(
                            f"{method} {path} with a {role} key ({scope}): {answer.status_code}"
                        )
                elif answer.status_code != 403 or scope not in answer.json()["detail"]:
                    problems.append(
                        f"{method} {path} with a {role} key, without {scope}: "
                        f"{answer.status_code} {answer.text[:100]}"
                    )
            # A client's token holds its client's enrolments:* by itself; no key role needs it.
            if not allowed and not by_client:
                problems.append(f"{method} {path}: no role holds {scope}")
    assert problems == []
    assert checked > 0


@pytest.mark.parametrize("service", SERVICES)
async def test_the_public_routes_answer_without_a_key_and_show_no_one(stack, world, service):
    """/healthz, /readyz, /metrics, the documentation and the empty dashboard page, while the
    stack holds A's data: no person, no record id, no organisation's figures beyond the
    operational gauges of /metrics."""
    for path in PUBLIC | PUBLIC_OF.get(service, {}):
        answer = await world.http.get(f"{stack.service_url(service)}{path}")
        assert answer.status_code == 200, (path, answer.status_code)
        found = ID.findall(answer.text) + [p for p in PERSONAL if p in answer.text]
        assert found == [], (service, path, found)
        if path == "/dashboard":
            # No figures inside (a report carries them in <script id="dashboard-data">).
            assert A not in answer.text
            assert 'id="dashboard-data"' not in answer.text


async def test_the_opt_out_link_is_a_credential_of_its_own(stack, world):
    """No API key: the link's token names the client and the channel with an HMAC. A forged or
    altered one changes nothing; the genuine one stops that channel."""
    keys = service_keys.load_or_create(stack.home)
    link_key = opt_out_links.link_key(sealing.key_from_text(keys["CONTACT_SHARING_KEY"]))
    client_ref = world.ids["client_ref"]
    genuine = opt_out_links.token(link_key, client_ref, Channel.EMAIL)
    other_client = opt_out_links.token(link_key, f"cl_{'0' * 32}", Channel.EMAIL)
    forged = [
        opt_out_links.token(b"\x00" * 32, client_ref, Channel.EMAIL),  # not the service's key
        genuine.replace(".email.", ".sms."),  # the channel changed
        f"{client_ref}.email.{other_client.rsplit('.', 1)[1]}",  # another client's MAC
        f"{client_ref}.email",
        client_ref,
    ]

    async def preferences() -> Any:
        return await world.ok(
            "GET", "notifications", "/v1/clients/{client_ref}/preferences", A, "notifications"
        )

    before = await preferences()
    assert "email" not in before["opted_out"]
    for token in forged:
        for method in ("GET", "POST"):
            answer = await world.http.request(
                method, world.url("notifications", f"/v1/opt-out/{token}")
            )
            assert answer.status_code == 404, (token, method, answer.status_code)
    assert await preferences() == before
    page = await world.http.get(world.url("notifications", f"/v1/opt-out/{genuine}"))
    assert page.status_code == 200 and "<form" in page.text
    assert await preferences() == before  # a GET changes nothing: mail scanners follow links
    done = await world.http.post(world.url("notifications", f"/v1/opt-out/{genuine}"))
    assert done.status_code == 200
    assert "email" in (await preferences())["opted_out"]


# ---------------------------------------------------------------------- organisation isolation


@dataclass(frozen=True)
class Probe:
    """One endpoint called with B's key on A's data (the portal's: a client of C's token)."""

    service: str
    method: str
    path: str
    role: str
    body: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    # What A's data looks like through this view must not change.
    watch: tuple[str, ...] = ()
    # A search or B's own figures: 200, with nothing of A in it.
    listing: bool = False
    expect: frozenset[int] = frozenset({404})
    organisation: str = B
    # Who the data belongs to, in the probe's role: the same request with its key succeeds.
    owner: str = A


SOON = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0).isoformat()
SCORES = {
    "money": 3,
    "housing": 6,
    "health": 5,
    "social_contacts": 4,
    "daily_activities": 5,
    "wellbeing": 4,
}
T = "/v1/trajectories/{trajectory_id}"
APT = T + "/appointments/{appointment_id}"
E = "/v1/enrolments/{enrolment_id}"
PROBES: dict[str, Probe] = {
    # intake: the referrer's status, the client's consents and erasure
    "status by another referrer": Probe(
        "intake",
        "GET",
        "/v1/referrals/{referral_id}/status",
        "referrer",
        organisation=B_GP,
        owner=A_GP,
    ),
    "status by another organisation": Probe(
        "intake", "GET", "/v1/referrals/{referral_id}/status", "referrer", owner=A_GP
    ),
    "fhir task by another referrer": Probe(
        "intake", "GET", "/v1/fhir/Task/{task_id}", "referrer", organisation=B_GP, owner=A_GP
    ),
    "fhir task by another organisation": Probe(
        "intake", "GET", "/v1/fhir/Task/{task_id}", "referrer", owner=A_GP
    ),
    "consents": Probe(
        "intake", "GET", "/v1/clients/{client_ref}/consents", "worker", watch=("consents",)
    ),
    "grant consent": Probe(
        "intake",
        "POST",
        "/v1/clients/{client_ref}/consents",
        "worker",
        body={
            "partner_organisation_id": "schuldhulp-midden",
            "purpose": "reminders",
            "granted_at": "2026-03-03T10:00:00+01:00",
        },
        watch=("consents",),
    ),
    "withdraw consent": Probe(
        "intake",
        "POST",
        "/v1/clients/{client_ref}/consents/{consent_id}/withdrawal",
        "worker",
        watch=("consents",),
    ),
    "erase client": Probe(
        "intake",
        "POST",
        "/v1/clients/{client_ref}/erasure",
        "worker",
        watch=("consents", "trajectory", "preferences"),
    ),
    # trajectory: every worker action, and the manager's read
    "find by client": Probe(
        "trajectory",
        "GET",
        "/v1/trajectories",
        "worker",
        params={"client_ref": "{client_ref}"},
        listing=True,
    ),
    "find by referral": Probe(
        "trajectory",
        "GET",
        "/v1/trajectories",
        "worker",
        params={"referral_id": "{referral_id}"},
        listing=True,
    ),
    "trajectory": Probe("trajectory", "GET", T, "worker"),
    "trajectory by a manager": Probe("trajectory", "GET", T, "manager"),
    "schedule": Probe(
        "trajectory",
        "POST",
        T + "/appointments",
        "worker",
        body={"starts_at": SOON},
        watch=("trajectory",),
    ),
    "reschedule": Probe(
        "trajectory",
        "POST",
        APT + "/reschedule",
        "worker",
        body={"starts_at": SOON},
        watch=("trajectory",),
    ),
    "cancel": Probe("trajectory", "POST", APT + "/cancel", "worker", watch=("trajectory",)),
    "attended": Probe("trajectory", "POST", APT + "/attended", "worker", watch=("trajectory",)),
    "missed": Probe("trajectory", "POST", APT + "/missed", "worker", watch=("trajectory",)),
    "contact": Probe(
        "trajectory",
        "POST",
        T + "/contacts",
        "worker",
        body={"channel": "phone", "minutes": 15, "occurred_at": "2026-03-04T10:00:00+01:00"},
        watch=("trajectory",),
    ),
    "assign module": Probe(
        "trajectory",
        "POST",
        T + "/modules",
        "worker",
        body={"module_id": "omgaan-met-stress"},
        watch=("trajectory",),
    ),
    "phase": Probe(
        "trajectory",
        "POST",
        T + "/phase",
        "worker",
        body={"phase": "guidance"},
        watch=("trajectory",),
    ),
    "hand off": Probe(
        "trajectory",
        "POST",
        T + "/partner-referrals",
        "worker",
        body={"partner_organisation_id": "schuldhulp-midden"},
        watch=("trajectory",),
    ),
    "aftercare": Probe("trajectory", "POST", T + "/aftercare", "worker", watch=("trajectory",)),
    "close": Probe(
        "trajectory",
        "POST",
        T + "/closure",
        "worker",
        body={"reason": "goal_reached"},
        watch=("trajectory",),
    ),
    "homework list": Probe("trajectory", "GET", T + "/homework", "worker"),
    "feedback": Probe(
        "trajectory",
        "POST",
        T + "/homework/{submission_id}/feedback",
        "worker",
        body={"text": "Goed gedaan."},
        watch=("trajectory", "enrolment"),
    ),
    # learning: the portal (another organisation's client's own token), and the worker's
    # homework read. Another client is nobody to a client's token: 404.
    "enrolments of client": Probe(
        "learning",
        "GET",
        "/v1/enrolments",
        "portal",
        params={"client_ref": "{client_ref}"},
        organisation=C,
    ),
    "self-enrol": Probe(
        "learning",
        "POST",
        "/v1/enrolments",
        "portal",
        body={"client_ref": "{client_ref}", "module_id": "zelfscan-leefgebieden"},
        watch=("enrolments",),
        organisation=C,
    ),
    "progress": Probe("learning", "GET", E, "portal", organisation=C),
    "start": Probe(
        "learning", "POST", E + "/start", "portal", watch=("enrolment",), organisation=C
    ),
    "complete step": Probe(
        "learning",
        "POST",
        E + "/steps/welkom/complete",
        "portal",
        watch=("enrolment",),
        organisation=C,
    ),
    "hand in homework": Probe(
        "learning",
        "POST",
        E + "/steps/huiswerk-kasboek/homework",
        "portal",
        body={"answer": "Niet van mij."},
        watch=("enrolment", "trajectory"),
        organisation=C,
    ),
    "questionnaire": Probe(
        "learning",
        "POST",
        E + "/steps/zelfscan/questionnaire",
        "portal",
        body={"scores": SCORES},
        watch=("enrolment",),
        organisation=C,
    ),
    "complete module": Probe(
        "learning", "POST", E + "/complete", "portal", watch=("enrolment",), organisation=C
    ),
    "fhir task": Probe(
        "learning", "GET", "/v1/fhir/Task/{enrolment_task_id}", "portal", organisation=C
    ),
    "fhir tasks of client": Probe(
        "learning",
        "GET",
        "/v1/fhir/Task",
        "portal",
        params={"patient:identifier": "{client_ref}"},
        organisation=C,
    ),
    "read homework": Probe("learning", "GET", "/v1/homework/{submission_id}", "worker"),
    "portal token": Probe("learning", "POST", "/v1/clients/{client_ref}/portal-tokens", "worker"),
    # notifications
    "reminders": Probe(
        "notifications",
        "GET",
        "/v1/reminders",
        "notifications",
        params={"client_ref": "{client_ref}"},
        listing=True,
    ),
    "preferences": Probe(
        "notifications", "GET", "/v1/clients/{client_ref}/preferences", "notifications"
    ),
    "opt out": Probe(
        "notifications",
        "POST",
        "/v1/clients/{client_ref}/opt-out",
        "notifications",
        body={"channel": "sms"},
        watch=("preferences",),
    ),
    # analytics: B's own figures hold nothing of A
    "figures": Probe("analytics", "GET", "/v1/figures", "manager", listing=True),
    "figures as CSV": Probe(
        "analytics", "GET", "/v1/figures", "manager", params={"format": "csv"}, listing=True
    ),
    "referral mix": Probe("analytics", "GET", "/v1/referral-mix", "manager", listing=True),
    "dashboard data": Probe("analytics", "GET", "/v1/dashboard-data", "manager", listing=True),
    "dashboard report": Probe("analytics", "GET", "/v1/dashboard-report", "manager", listing=True),
    "business case": Probe("analytics", "GET", "/v1/business-case", "manager", listing=True),
}
# A's view of its data, per watch: (service, path, role, params).
VIEWS: dict[str, tuple[str, str, str, dict[str, str] | None]] = {
    "consents": ("intake", "/v1/clients/{client_ref}/consents", "worker", None),
    "trajectory": ("trajectory", T, "worker", None),
    "enrolment": ("learning", E, "portal", None),
    "enrolments": ("learning", "/v1/enrolments", "portal", {"client_ref": "{client_ref}"}),
    "preferences": ("notifications", "/v1/clients/{client_ref}/preferences", "notifications", None),
}


def test_every_endpoint_of_the_openapi_documents_is_probed(openapi):
    """A new endpoint needs a probe here (or a reason it has none)."""
    # Nothing of one organisation in them: the module catalogue is the same for everyone; a
    # snapshot is published from the caller's own figures, and the benchmark shows the
    # aggregates every organisation published for the sector to see.
    shared = {
        ("learning", "GET", "/v1/modules"),
        ("learning", "GET", "/v1/modules/{module_id}"),
        ("learning", "GET", "/v1/fhir/ActivityDefinition"),
        ("learning", "GET", "/v1/fhir/ActivityDefinition/{module_id}"),
        ("analytics", "POST", "/v1/benchmark/snapshots"),
        ("analytics", "GET", "/v1/benchmark"),
        # The programme business case: the published example, or parameters the caller sends.
        ("analytics", "GET", "/v1/business-case/programme"),
        ("analytics", "POST", "/v1/business-case/programme"),
    }
    # Tested on their own below; the sector table (closed cases only, and this world closes
    # none) in tests/test_analytics_sector_api.py, whose store answers the caller's own only.
    separate = {
        ("analytics", "GET", "/v1/sector-table"),
        ("intake", "POST", "/v1/referrals"),
        # The FHIR door's Bundle in another organisation's name: tests/test_referral_chain_rules.py.
        ("intake", "POST", "/v1/fhir/Bundle"),
        ("notifications", "POST", "/v1/inbound-sms"),
        ("analytics", "POST", "/v1/benchmark/imports"),
        # Early-warning signals: one organisation's worker against another's signal in
        # tests/test_signals_chain.py.
        # This world sends no signal, so A has no signal figures to leak; the route reads the
        # caller's own facts as /v1/figures does.
        ("analytics", "GET", "/v1/signal-figures"),
        ("intake", "POST", "/v1/signals"),
        ("intake", "GET", "/v1/signals"),
        ("intake", "GET", "/v1/signals/{signal_id}"),
        ("intake", "POST", "/v1/signals/{signal_id}/outreach"),
        ("intake", "POST", "/v1/signals/{signal_id}/answer"),
        ("intake", "POST", "/v1/signals/{signal_id}/erasure"),
    }
    unprobed = []
    for name in SERVICES:
        for method, path, _ in operations(openapi[name]):
            if path in PUBLIC or path in PUBLIC_OF.get(name, {}):
                continue
            route = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
            probed = any(
                p.service == name and p.method == method and route.match(p.path)
                for p in PROBES.values()
            )
            if not probed and (name, method, path) not in shared | separate:
                unprobed.append((name, method, path))
    assert unprobed == []


async def view(world: World, name: str) -> Any:
    service, path, role, params = VIEWS[name]
    query = {k: v.format(**world.ids) for k, v in (params or {}).items()}
    return await world.ok("GET", service, path, A, role, params=query)


def leaks(world: World, request: str, answer: str) -> list[str]:
    """A's data in an answer to B, beyond what B itself put in the request (a 404 may name the
    id that was asked for)."""
    return [secret for secret in world.secrets() if secret in answer and secret not in request]


@pytest.mark.parametrize("probe", PROBES.values(), ids=PROBES.keys())
async def test_another_organisation_sees_and_changes_nothing(world, probe):
    params = {k: v.format(**world.ids) for k, v in (probe.params or {}).items()}
    body = (
        {k: v.format(**world.ids) if isinstance(v, str) else v for k, v in probe.body.items()}
        if probe.body
        else None
    )
    before = {name: await view(world, name) for name in probe.watch}
    answer = await world.call(
        probe.method,
        probe.service,
        probe.path,
        probe.organisation,
        probe.role,
        params=params,
        json=body,
    )
    request = f"{world.url(probe.service, probe.path)} {params} {body}"
    assert leaks(world, request, answer.text) == []
    if probe.listing:
        assert answer.status_code == 200, answer.text
        if probe.service == "analytics":
            assert_no_figures(answer)
        else:
            assert answer.json() == []
    else:
        assert answer.status_code in probe.expect, (answer.status_code, answer.text)
        # The service's own refusal, not a path that does not exist (the FHIR door refuses with
        # an OperationOutcome).
        assert answer.json().get("detail") != "Not Found"
    for name, seen in before.items():
        assert await view(world, name) == seen, f"{name} changed"
    if probe.method == "GET" and probe.path != "/v1/business-case":
        # The same request with the owner's key does show A's data: the probe asks the right
        # thing. (The business case is the same for both: neither has measured hours yet.)
        own = await world.call(
            probe.method, probe.service, probe.path, probe.owner, probe.role, params=params
        )
        assert own.status_code == 200, own.text
        if probe.service == "analytics":
            assert has_figures(own)
        else:
            assert any(value in own.text for value in world.ids.values())


def has_figures(answer: httpx.Response) -> bool:
    kind = answer.headers["content-type"]
    if kind.startswith("text/csv"):
        return len(answer.text.strip().splitlines()) > 1
    if kind.startswith("text/html"):
        return A in answer.text
    data = answer.json()
    return bool(data.get("cells") or data.get("rows") or data.get("years"))


def assert_no_figures(answer: httpx.Response) -> None:
    """B has no referrals, trajectories or appointments of its own: its figures are empty."""
    kind = answer.headers["content-type"]
    if kind.startswith("text/csv"):
        assert len(answer.text.strip().splitlines()) == 1  # the header only
    elif kind.startswith("text/html"):
        assert B in answer.text
    else:
        data = answer.json()
        if "cells" in data:
            assert data["organisation"] == B and data["cells"] == []
        elif "rows" in data:
            assert data["organisation"] == B and data["rows"] == []
        elif "referral_sources" in data:
            assert data["organisation"] == B
            assert data["years"] == [] and data["referral_sources"] == {}
            assert data["postcode_areas"] == {}
        else:  # the business case: the same assumptions, B's (absent) measured hours
            assert data["measured"] is None and data["hours_source"] == "assumed"


async def test_an_idempotency_key_belongs_to_its_organisation(world):
    """The same Idempotency-Key from another referrer is another referral: never A's answer,
    nor a 409 that would tell the key was used."""
    client = {**CLIENT, "name": "Gerrit Wolterink", "email": "g.wolterink@example.org"}
    client["phone"] = "06-97531864"
    answer = await world.http.post(
        world.url("intake", "/v1/referrals"),
        json=referral_of(client, "HOP-SEC-1"),
        headers={"Idempotency-Key": world.idempotency_key, **world.key(B_GP, "referrer")},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["referral_id"] != world.ids["referral_id"]
    assert leaks(world, "", answer.text) == []


async def test_a_stop_reply_through_another_organisation_stops_nothing(world):
    """The SMS provider's STOP for A's client's number, posted with B's key, finds no one."""

    async def opted_out() -> list[str]:
        return (await view(world, "preferences"))["opted_out"]

    assert "sms" not in await opted_out()
    stop = {"from": CLIENT["phone"], "body": "STOP"}
    answer = await world.call(
        "POST", "notifications", "/v1/inbound-sms", B, "notifications", json=stop
    )
    assert answer.status_code == 200 and answer.json() == {"opted_out": 0}
    assert "sms" not in await opted_out()
    own = await world.call(
        "POST", "notifications", "/v1/inbound-sms", A, "notifications", json=stop
    )
    assert own.json() == {"opted_out": 1}
    assert "sms" in await opted_out()


async def test_no_one_imports_a_benchmark_snapshot_in_another_organisations_name(world):
    """A snapshot is A's own to publish: B can neither import figures labelled A nor write over
    the snapshot A published; a snapshot of an organisation outside the chain is imported."""
    period = str(datetime.now(UTC).year - 1)  # a year that has ended: a snapshot's period
    published = await world.ok(
        "POST", "analytics", "/v1/benchmark/snapshots", A, "manager", json={"period": period}
    )

    async def benchmark() -> dict[str, Any]:
        return await world.ok(
            "GET", "analytics", "/v1/benchmark", A, "manager", params={"period": period}
        )

    async def labelled(label: str) -> Any:
        columns = (await benchmark())["organisations"]
        return next((c for c in columns if c["organisation"] == label), None)

    own = await eventually(lambda: labelled(A), "A's snapshot in the benchmark")
    assert own["own"] is True
    forged = {
        **published,
        "snapshot_id": f"kpi_{uuid.uuid4().hex}",
        "published_at": datetime.now(UTC).isoformat(),
        "cells": [],
    }
    imports = "/v1/benchmark/imports"
    in_a_name = await world.call("POST", "analytics", imports, B, "manager", json=forged)
    assert in_a_name.status_code == 403, in_a_name.text
    over_a = {**forged, "snapshot_id": published["snapshot_id"], "organisation": "extern-bureau"}
    over = await world.call("POST", "analytics", imports, B, "manager", json=over_a)
    assert over.status_code == 409, over.text
    outside = {**forged, "organisation": "extern-bureau"}
    accepted = await world.call("POST", "analytics", imports, B, "manager", json=outside)
    assert accepted.status_code == 202, accepted.text
    # Once the accepted import is in, anything published before it would be too.
    await eventually(lambda: labelled("extern-bureau"), "the import outside the chain")
    assert await labelled(A) == own


async def test_figures_by_an_unknown_dimension_are_refused_naming_the_choices(world):
    wrong = await world.call(
        "GET", "analytics", "/v1/figures", A, "manager", params={"by": "funder,postcode"}
    )
    assert wrong.status_code == 422, wrong.text
    assert "postcode" in wrong.json()["detail"] and "work_type" in wrong.json()["detail"]


# ---------------------------------------------------------------------- API keys at rest


def test_the_key_file_holds_hashes_only_and_no_key_leaves_a_trace(stack, world):
    """The services read `api-keys.jsonl`: per key its id, SHA-256, organisation and scopes.
    No key is in it, in a service's environment or in a log (after every test above used them);
    a stored hash is no key (test_every_operation_needs_a_key_with_its_scope sends them)."""
    keys_file = access.provision(stack.home)
    records = [json.loads(line) for line in keys_file.read_text().splitlines()]
    tokens = json.loads((stack.home / access.TOKENS_FILE).read_text())
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert len(records) == len(tokens)
    text = keys_file.read_text()
    for token in tokens.values():
        secret = token.split("_", 2)[2]
        assert token not in text and secret not in text
    # Every key is there as the SHA-256 of the whole key, and nothing else secret.
    assert {r["sha256"] for r in records} == {
        hashlib.sha256(t.encode()).hexdigest() for t in tokens.values()
    }
    for record in records:
        assert set(record) == {
            "key_id",
            "sha256",
            "organisation_id",
            "scopes",
            "worker_id",
            "label",
            "expires_at",
            "revoked_at",
        }
        assert record["expires_at"] is not None  # every key expires
    secrets = [t for t in tokens.values()] + [t.split("_", 2)[2] for t in tokens.values()]
    for name in SERVICES:
        log = stack.log_path(name).read_text(errors="replace")
        assert "service started" in log  # the service's own log
        assert [s for s in secrets if s in log] == []
    pids = [c.pid for c in stack.status() if c.name in SERVICES and c.pid]
    assert len(pids) == len(SERVICES)
    for pid in pids:
        environment = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert "API_KEYS_FILE" in environment
        assert [s for s in secrets if s in environment] == []


# ---------------------------------------------------------------------- rate limiting


def test_a_token_bucket_lets_a_burst_through_then_the_rate():
    now = [100.0]
    limit = RateLimit(per_minute=30, burst=3, clock=lambda: now[0])
    assert [limit.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.take("a") == pytest.approx(2.0)  # one token every two seconds
    assert limit.take("b") == 0.0  # another organisation has its own bucket
    now[0] += 1.0
    assert limit.take("a") == pytest.approx(1.0)  # half a token: a refusal takes nothing
    now[0] += 1.0
    assert limit.take("a") == 0.0
    now[0] += 3600
    assert [limit.take("a") for _ in range(4)][-1] > 0  # never more than the burst
    with pytest.raises(ValueError):
        RateLimit(per_minute=0, burst=1)
    with pytest.raises(ValueError):
        RateLimit(per_minute=1, burst=0)


async def test_the_partner_front_door_is_rate_limited_per_organisation(stack):
    """Four referrals at once, then one every two seconds (the stack's settings): the fifth is
    refused with 429 and a Retry-After after which the next one is let in (that a refusal
    takes no token is checked on a fake clock below). Another
    organisation, the status endpoint's own bucket and unauthenticated calls are unaffected."""
    intake = stack.service_url("intake")
    rated = bearer(stack.api_token(RATED, "referrer"))
    outside = {**CLIENT, "postcode": "1011 AB"}  # declined at once, nothing follows
    async with httpx.AsyncClient(base_url=intake, timeout=30) as http:

        async def refer(headers: dict[str, str]) -> httpx.Response:
            return await http.post(
                "/v1/referrals", json=referral_of(outside, "GEM-RATE"), headers=headers
            )

        # Six at once: the bucket holds four (a fifth only if two seconds passed meanwhile).
        answers = await asyncio.gather(*(refer(rated) for _ in range(6)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(201) >= 4 and 429 in statuses, statuses
        refused = next(a for a in answers if a.status_code == 429)
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 2
        detail = refused.json()["detail"]
        assert "too many referrals" in detail and RATED in detail and "30 a minute" in detail
        assert (await refer(bearer(stack.api_token(B_GP, "referrer")))).status_code == 201
        assert (await refer({})).status_code == 401  # refused before it reaches a bucket
        made = next(a for a in answers if a.status_code == 201)
        status_path = f"/v1/referrals/{made.json()['referral_id']}/status"
        # Status requests have a bucket of their own, of six.
        asked = await asyncio.gather(*(http.get(status_path, headers=rated) for _ in range(8)))
        statuses = sorted(a.status_code for a in asked)
        assert statuses.count(200) >= 6 and 429 in statuses, statuses
        await asyncio.sleep(wait)  # as the answer told
        assert (await refer(rated)).status_code == 201


# ---------------------------------------------------------------------- revocation


async def test_a_revoked_key_is_refused_within_a_minute_without_a_restart(stack):
    """The operator revokes a key in the key file; the running service refuses it soon after
    (API_KEYS_RELOAD_SECONDS, 10 s by default), with no restart and the other keys unaffected."""
    keys_file = access.provision(stack.home)
    token, record = issue_key("huisarts-de-linde", ["referrals:read"], label="to-revoke")
    append_record(keys_file, record)
    url = f"{stack.service_url('intake')}/v1/referrals/ref_{'0' * 32}/status"
    others = bearer(stack.api_token("huisarts-de-linde", "referrer"))
    pids = {c.name: c.pid for c in stack.status() if c.name == "intake"}
    async with httpx.AsyncClient(timeout=10) as http:

        async def known() -> bool | None:
            answer = await http.get(url, headers=bearer(token))
            return answer.status_code == 404 or None  # the key works: no such referral

        await eventually(known, "the new key to be read", timeout=60)
        assert auth_main(["revoke", "--file", str(keys_file), "--key-id", record.key_id]) == 0
        revoked_at = time.monotonic()

        async def refused() -> bool | None:
            return (await http.get(url, headers=bearer(token))).status_code == 401 or None

        await eventually(refused, "the revoked key to be refused", timeout=60)
        assert time.monotonic() - revoked_at < 60
        assert (await http.get(url, headers=others)).status_code == 404
    assert {c.name: c.pid for c in stack.status() if c.name == "intake"} == pids


# ---------------------------------------------------------------------- the client's portal


async def test_a_portal_token_reaches_its_own_clients_enrolments_only(stack, world):
    """The worker gives a client a portal token: with it the portal sees that client's
    enrolments and nobody else's (another client's enrolment is 404, as is their list). The
    organisation's portal key reaches no client's enrolments at all (403)."""
    other = {**CLIENT, "name": "Jeroen Vos", "email": "jeroen.vos@example.org"}
    other["phone"], other["date_of_birth"] = "06-11223344", "1979-02-03"
    made = await world.ok(
        "POST",
        "intake",
        "/v1/referrals",
        A_GP,
        "referrer",
        json=referral_of(other, "HDL-SEC-PORTAL"),
        headers={"Idempotency-Key": f"hdl-{uuid.uuid4().hex}"},
    )

    async def opened() -> Any:
        found = await world.ok(
            "GET",
            "trajectory",
            "/v1/trajectories",
            A,
            "worker",
            params={"referral_id": made["referral_id"]},
        )
        return found[0] if found else None

    trajectory = await eventually(opened, "the other client's trajectory")
    module = await world.ok(
        "POST",
        "trajectory",
        f"/v1/trajectories/{trajectory['trajectory_id']}/modules",
        A,
        "worker",
        json={"module_id": "omgaan-met-stress"},
    )
    others_enrolment = module["enrolment_id"]

    # Learning knows the other client once the worker can issue them a token of their own.
    await world.client_in_learning(A, trajectory["client_ref"])
    issued = await world.ok(
        "POST", "learning", "/v1/clients/{client_ref}/portal-tokens", A, "worker"
    )
    assert issued["client_ref"] == world.ids["client_ref"] and issued["token"].startswith("kbp_")
    own = bearer(issued["token"])

    async def as_client(path: str, **kwargs: Any) -> httpx.Response:
        return await world.http.get(world.url("learning", path), headers=own, **kwargs)

    mine = await as_client("/v1/enrolments/{enrolment_id}")
    assert mine.status_code == 200 and mine.json()["enrolment_id"] == world.ids["enrolment_id"]
    listed = await as_client("/v1/enrolments", params={"client_ref": world.ids["client_ref"]})
    assert [e["enrolment_id"] for e in listed.json()] == [world.ids["enrolment_id"]]
    theirs = await as_client(f"/v1/enrolments/{others_enrolment}")
    assert theirs.status_code == 404
    their_list = await as_client("/v1/enrolments", params={"client_ref": trajectory["client_ref"]})
    assert their_list.status_code == 404
    started = await world.http.post(
        world.url("learning", f"/v1/enrolments/{others_enrolment}/start"), headers=own
    )
    assert started.status_code == 404
    assert "Jeroen" not in theirs.text + their_list.text + started.text
    # A token is stored as a hash only, and a made-up or tampered one gets nowhere.
    forged = issued["token"][:-4] + ("aaaa" if not issued["token"].endswith("aaaa") else "bbbb")
    for token in (forged, "kbp_000000000000_" + "x" * 43):
        answer = await world.http.get(
            world.url("learning", "/v1/enrolments/{enrolment_id}"), headers=bearer(token)
        )
        assert answer.status_code == 401
    # The organisation's portal key (enrolments:read) is a valid key, and reaches no client's
    # enrolment, list or step: only the client's own token does.
    organisation_key = bearer(stack.api_token(A, "portal"))
    for path, params in (
        ("/v1/enrolments/{enrolment_id}", None),
        ("/v1/enrolments", {"client_ref": world.ids["client_ref"]}),
    ):
        answer = await world.http.get(
            world.url("learning", path), params=params, headers=organisation_key
        )
        assert answer.status_code == 403, (path, answer.status_code)
        assert "portal token" in answer.json()["detail"]
        assert "Annemiek" not in answer.text
    # (It lacks enrolments:write altogether: the key reads the catalogue, nothing more.)
    start = world.url("learning", "/v1/enrolments/{enrolment_id}/start")
    assert (await world.http.post(start, headers=organisation_key)).status_code == 403
    catalogue = await world.http.get(world.url("learning", "/v1/modules"), headers=organisation_key)
    assert catalogue.status_code == 200  # the catalogue is nobody's: the key reads it
    # Another organisation's worker cannot have one made for A's client.
    refused = await world.call(
        "POST", "learning", "/v1/clients/{client_ref}/portal-tokens", B, "worker"
    )
    assert refused.status_code == 404


async def test_homework_answers_are_stored_encrypted_with_the_clients_key(stack, world):
    """The answer A's client handed in is readable through the portal, and nowhere in
    learning's database in the clear; the client's key is stored wrapped."""
    answer = "De vaste lasten zijn hoger dan ik dacht."
    progress = await world.ok("GET", "learning", "/v1/enrolments/{enrolment_id}", A, "portal")
    assert [h["answer"] for h in progress["homework"]] == [answer]
    mongo: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    try:
        db = mongo["ketenbus_learning"]
        enrolment = await db.enrolments.find_one({"_id": world.ids["enrolment_id"]})
        assert enrolment is not None
        [submission] = enrolment["submissions"]
        assert "answer" not in submission and submission["answer_sealed"]["ciphertext"]
        everything = []
        for name in await db.list_collection_names():
            everything += [str(d) async for d in db[name].find()]
        assert not [d for d in everything if "vaste lasten" in d]
        key = await db.client_keys.find_one({"_id": world.ids["client_ref"]})
        assert key is not None and "key" not in key and key["wrapped"]  # wrapped, not bare
    finally:
        await mongo.close()
