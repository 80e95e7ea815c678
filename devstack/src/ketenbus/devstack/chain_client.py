"""Talking to the chain as its users do: a referrer, a social worker, the client portal.

Only HTTP and the public API shapes; used by the demo scenario and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx

from ketenbus.devstack.kafka_access import KafkaAccess

T = TypeVar("T")


class ChainError(Exception):
    """The chain said no (or never answered in time). `status` is the HTTP status and `code`
    the service's reason (e.g. "unavailable", "no_consent", "not_found"; see
    ketenbus.kit.errors.DomainError), None where there was none: decide on these, never on
    the message."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code

    @classmethod
    def of(cls, what: str, response: httpx.Response) -> ChainError:
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        return cls(f"{what}: {response.status_code} {response.text}", response.status_code, code)

    @property
    def retryable(self) -> bool:
        """The service's transaction did not commit (a write conflict, say) and it asks to
        be asked again."""
        return self.status == 503

    @property
    def missing_route(self) -> bool:
        """The service has no such route (yet): a feature of the chain that has not landed
        (a 404 without a code is the framework's own, not a service's "no such thing")."""
        return self.status == 405 or (self.status == 404 and self.code is None)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 30.0
) -> T:
    """Poll until the probe returns something: the chain is asynchronous by design."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise ChainError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


def _pool() -> httpx.AsyncClient:
    # Idle connections are dropped before uvicorn's keep-alive (5 s) closes them, so a
    # request never goes out on a connection the server is just closing.
    return httpx.AsyncClient(
        timeout=30.0, limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=2.0)
    )


class ChainClient:
    def __init__(
        self,
        urls: dict[str, str],
        tokens: Callable[[str, str], str],
        kafka: KafkaAccess | None = None,
        replicas: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`kafka`: the chain's Kafka, for the parts of a scenario that read topics.
        `replicas`: every process of a service (EmbeddedStack.replica_urls()); the API calls
        take turns among them, as a load balancer would spread them in production."""
        self.urls = urls
        self._turns: dict[str, Iterator[str]] = {
            service: itertools.cycle(addresses)
            for service, addresses in (replicas or {}).items()
            if addresses
        }
        self.tokens = tokens
        self.kafka = kafka
        self.http = _pool()
        # A pool per service address for the API calls: at every request httpcore asks each
        # idle connection of its pool whether the server closed it (a system call each): with
        # one pool for all services, a sixth of the region-sized demo's simulation profile.
        self._pools: dict[str, httpx.AsyncClient] = {}
        self._portal_tokens: dict[str, str] = {}  # per client reference

    async def close(self) -> None:
        for pool in (self.http, *self._pools.values()):
            await pool.aclose()

    async def _call(
        self, method: str, service: str, path: str, organisation: str, role: str, **kwargs: Any
    ) -> Any:
        return await self._request(method, service, path, self.tokens(organisation, role), **kwargs)

    async def _as_client(
        self, method: str, path: str, organisation: str, client_ref: str, **kwargs: Any
    ) -> Any:
        """The client in learning's portal, with the portal token their worker issued."""
        token = await self.portal_token(organisation, client_ref)
        return await self._request(method, "learning", path, token, **kwargs)

    async def portal_token(self, organisation: str, client_ref: str) -> str:
        """The client's own portal token, issued by their social worker (once: it holds a
        week, longer than any scenario). Learning issues it once it knows the client."""
        token = self._portal_tokens.get(client_ref)
        if token is None:
            issued = await self._call(
                "POST",
                "learning",
                f"/v1/clients/{client_ref}/portal-tokens",
                organisation,
                "worker",
            )
            token = self._portal_tokens[client_ref] = issued["token"]
        return token

    async def _request(
        self, method: str, service: str, path: str, token: str, **kwargs: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        headers.update(kwargs.pop("headers", {}))
        address = self._address(service)
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = _pool()
        response = await pool.request(method, f"{address}{path}", headers=headers, **kwargs)
        if response.status_code >= 400:
            raise ChainError.of(f"{method} {service}{path}", response)
        return response.json()

    async def refer(
        self, referrer: str, referral: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._call(
            "POST", "intake", "/v1/referrals", referrer, "referrer", json=referral, headers=headers
        )

    async def referral_status(self, referrer: str, referral_id: str) -> dict[str, Any]:
        return await self._call(
            "GET", "intake", f"/v1/referrals/{referral_id}/status", referrer, "referrer"
        )

    # Early-warning signals (docs/signals.md): a creditor sends one, the serving
    # organisation's worker reaches out and records the resident's answer.

    async def send_signal(
        self, creditor: str, signal: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """As a creditor (`access.CREDITORS`): {"signal_id", "received_at"}."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._call(
            "POST", "intake", "/v1/signals", creditor, "creditor", json=signal, headers=headers
        )

    async def signals(self, organisation: str, **filters: Any) -> list[dict[str, Any]]:
        """`state="open"`, `overdue="true"`: the organisation's signals, without details."""
        return await self._call(
            "GET", "intake", "/v1/signals", organisation, "worker", params=filters
        )

    async def record_outreach(
        self,
        organisation: str,
        signal_id: str,
        method: str,
        reached: bool,
        attempted_at: datetime,
    ) -> dict[str, Any]:
        """method: "letter", "phone" or "home_visit"; not in the future of intake's clock."""
        body = {"method": method, "reached": reached, "attempted_at": attempted_at.isoformat()}
        return await self._call(
            "POST", "intake", f"/v1/signals/{signal_id}/outreach", organisation, "worker", json=body
        )

    async def answer_signal(
        self,
        organisation: str,
        signal_id: str,
        accepts_help: bool,
        answered_at: datetime,
        purposes: tuple[str, ...] = ("reminders",),
    ) -> dict[str, Any]:
        """After an outreach that reached the resident. Accepting makes a referral (its id in
        `referral_id`, its trajectory through `trajectory_for`)."""
        body: dict[str, Any] = {
            "accepts_help": accepts_help,
            "answered_at": answered_at.isoformat(),
        }
        if accepts_help:
            body["consent"] = {"purposes": list(purposes), "granted_at": answered_at.isoformat()}
        return await self._call(
            "POST", "intake", f"/v1/signals/{signal_id}/answer", organisation, "worker", json=body
        )

    async def trajectory_for(self, organisation: str, referral_id: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            found = await self._call(
                "GET",
                "trajectory",
                "/v1/trajectories",
                organisation,
                "worker",
                params={"referral_id": referral_id},
            )
            return found[0] if found else None

        return await eventually(probe, f"the trajectory of referral {referral_id}")

    async def trajectory(self, organisation: str, trajectory_id: str) -> dict[str, Any]:
        return await self._call(
            "GET", "trajectory", f"/v1/trajectories/{trajectory_id}", organisation, "worker"
        )

    async def schedule(
        self, organisation: str, trajectory_id: str, starts_at: datetime, **details: Any
    ) -> dict[str, Any]:
        body = {"starts_at": starts_at.isoformat(), **details}
        return await self._call(
            "POST",
            "trajectory",
            f"/v1/trajectories/{trajectory_id}/appointments",
            organisation,
            "worker",
            json=body,
        )

    async def register(
        self, organisation: str, trajectory_id: str, appointment_id: str, outcome: str
    ) -> dict[str, Any]:
        """outcome: "attended" or "missed"."""
        return await self._call(
            "POST",
            "trajectory",
            f"/v1/trajectories/{trajectory_id}/appointments/{appointment_id}/{outcome}",
            organisation,
            "worker",
        )

    async def assign_module(
        self, organisation: str, trajectory_id: str, module_id: str, language: str = "nl"
    ) -> dict[str, Any]:
        return await self._call(
            "POST",
            "trajectory",
            f"/v1/trajectories/{trajectory_id}/modules",
            organisation,
            "worker",
            json={"module_id": module_id, "language": language},
        )

    async def enrolment(
        self, organisation: str, client_ref: str, enrolment_id: str
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            try:
                found = await self._as_client(
                    "GET",
                    "/v1/enrolments",
                    organisation,
                    client_ref,
                    params={"client_ref": client_ref},
                )
            except ChainError as error:
                if " 404 " in str(error):  # learning has not heard of the client yet
                    return None
                raise
            return next((e for e in found if e["enrolment_id"] == enrolment_id), None)

        return await eventually(probe, f"enrolment {enrolment_id} in learning")

    async def complete_module(
        self, organisation: str, client_ref: str, enrolment_id: str
    ) -> dict[str, Any]:
        return await self._as_client(
            "POST", f"/v1/enrolments/{enrolment_id}/complete", organisation, client_ref
        )

    def _address(self, service: str) -> str:
        """The replica whose turn it is, or the service's one address."""
        turns = self._turns.get(service)
        return next(turns) if turns is not None else self.urls[service]

    async def metrics(self, service: str) -> str:
        """One process's metrics: with replicas, the first's."""
        response = await self.http.get(f"{self.urls[service]}/metrics")
        response.raise_for_status()
        return response.text

    # ------------------------------------------------------------ the worker's other actions

    async def find_trajectory(self, organisation: str, referral_id: str) -> dict[str, Any] | None:
        """The trajectory of a referral if it is open yet (a waiting client has none)."""
        found = await self._call(
            "GET",
            "trajectory",
            "/v1/trajectories",
            organisation,
            "worker",
            params={"referral_id": referral_id},
        )
        return found[0] if found else None

    async def register_contact(
        self, organisation: str, trajectory_id: str, **contact: Any
    ) -> dict[str, Any]:
        """channel, minutes, occurred_at, and optionally direction, default_duration,
        online_dossier, replaces_face_to_face."""
        if isinstance(contact.get("occurred_at"), datetime):
            contact["occurred_at"] = contact["occurred_at"].isoformat()
        return await self._call(
            "POST",
            "trajectory",
            f"/v1/trajectories/{trajectory_id}/contacts",
            organisation,
            "worker",
            json=contact,
        )

    async def hand_off(self, organisation: str, trajectory_id: str, partner: str) -> dict[str, Any]:
        return await self._call(
            "POST",
            "trajectory",
            f"/v1/trajectories/{trajectory_id}/partner-referrals",
            organisation,
            "worker",
            json={"partner_organisation_id": partner},
        )

    async def grant_consent(
        self, organisation: str, client_ref: str, partner: str, purpose: str, granted_at: datetime
    ) -> dict[str, Any]:
        """The worker records a consent the client gave (e.g. for debt counselling)."""
        return await self._call(
            "POST",
            "intake",
            f"/v1/clients/{client_ref}/consents",
            organisation,
            "worker",
            json={
                "partner_organisation_id": partner,
                "purpose": purpose,
                "granted_at": granted_at.isoformat(),
            },
        )

    async def start_aftercare(self, organisation: str, trajectory_id: str) -> dict[str, Any]:
        return await self._call(
            "POST",
            "trajectory",
            f"/v1/trajectories/{trajectory_id}/aftercare",
            organisation,
            "worker",
        )

    async def close_trajectory(
        self, organisation: str, trajectory_id: str, reason: str
    ) -> dict[str, Any]:
        return await self._call(
            "POST",
            "trajectory",
            f"/v1/trajectories/{trajectory_id}/closure",
            organisation,
            "worker",
            json={"reason": reason},
        )

    async def start_module(
        self, organisation: str, client_ref: str, enrolment_id: str
    ) -> dict[str, Any]:
        return await self._as_client(
            "POST", f"/v1/enrolments/{enrolment_id}/start", organisation, client_ref
        )

    async def submit_homework(
        self, organisation: str, client_ref: str, enrolment_id: str, step_id: str, answer: str
    ) -> dict[str, Any]:
        return await self._as_client(
            "POST",
            f"/v1/enrolments/{enrolment_id}/steps/{step_id}/homework",
            organisation,
            client_ref,
            json={"answer": answer},
        )

    async def answer_questionnaire(
        self,
        organisation: str,
        client_ref: str,
        enrolment_id: str,
        step_id: str,
        scores: dict[str, int],
    ) -> dict[str, Any]:
        return await self._as_client(
            "POST",
            f"/v1/enrolments/{enrolment_id}/steps/{step_id}/questionnaire",
            organisation,
            client_ref,
            json={"scores": scores},
        )

    async def give_feedback(
        self, organisation: str, trajectory_id: str, submission_id: str, text: str
    ) -> dict[str, Any]:
        return await self._call(
            "POST",
            "trajectory",
            f"/v1/trajectories/{trajectory_id}/homework/{submission_id}/feedback",
            organisation,
            "worker",
            json={"text": text},
        )

    async def consents(self, organisation: str, client_ref: str) -> list[dict[str, Any]]:
        return await self._call(  # type: ignore[no-any-return]
            "GET", "intake", f"/v1/clients/{client_ref}/consents", organisation, "worker"
        )

    async def withdraw_consent(
        self, organisation: str, client_ref: str, consent_id: str
    ) -> dict[str, Any]:
        return await self._call(
            "POST",
            "intake",
            f"/v1/clients/{client_ref}/consents/{consent_id}/withdrawal",
            organisation,
            "worker",
        )

    async def erase_client(self, organisation: str, client_ref: str) -> dict[str, Any]:
        return await self._call(
            "POST", "intake", f"/v1/clients/{client_ref}/erasure", organisation, "worker"
        )

    async def sms_reply(self, organisation: str, sender: str, text: str) -> dict[str, Any]:
        """A client's reply to an SMS, as the SMS provider forwards it to notifications."""
        return await self._call(
            "POST",
            "notifications",
            "/v1/inbound-sms",
            organisation,
            "notifications",
            json={"from": sender, "body": text},
        )

    async def follow_link(self, url: str) -> int:
        """A link in a mail, followed by the client (a one-click POST, RFC 8058)."""
        response = await self.http.post(url)
        if response.status_code >= 400:
            raise ChainError.of(f"POST {url.split('/v1/')[0]}", response)
        return response.status_code

    async def analytics(self, organisation: str, path: str, **params: Any) -> Any:
        """An analytics query as the organisation's manager; CSV and text come back as text."""
        headers = {"Authorization": f"Bearer {self.tokens(organisation, 'manager')}"}
        response = await self.http.get(
            f"{self._address('analytics')}{path}", headers=headers, params=params
        )
        if response.status_code >= 400:
            raise ChainError.of(f"GET analytics{path}", response)
        if params.get("format") in ("csv", "text"):
            return response.text
        return response.json()
