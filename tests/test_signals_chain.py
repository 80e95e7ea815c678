"""Early-warning signals through the real intake and trajectory processes: a creditor sends a
signal, the serving organisation reaches out, and only a resident who accepts help becomes a
referral (and a trajectory); one who declines closes the signal; a signal left without
outreach is flagged, and after six months deleted (on the kit's accelerated clock).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from ketenbus.contracts.topics import SIGNALS
from ketenbus.devstack.chain_client import ChainClient, eventually
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.stack import EmbeddedStack
from ketenbus.intake.signals import months_after
from ketenbus.kit.broker import partitions_of

pytestmark = [pytest.mark.stack, pytest.mark.chain]

ENERGY = "energie-stroomlijn"
HOUSING = "woonstichting-domstad"
WATER = "waterbedrijf-vallei"
UTRECHT = "welzijn-utrecht"
AMERSFOORT = "welzijn-amersfoort"


def resident(name: str, postcode: str, phone: str, email: str) -> dict[str, Any]:
    return {
        "name": name,
        "date_of_birth": "1979-06-21",
        "street": "Kanaalweg 212",
        "postcode": postcode,
        "town": "Utrecht",
        "phone": phone,
        "email": email,
    }


WILLEMIJN = resident("Willemijn Oosterhout", "3526 KL", "06-31415926", "w.oosterhout@example.org")
GERRIT = resident("Gerrit Zonneveld", "3531 AB", "06-27182818", "g.zonneveld@example.org")
CUSTOMER_NUMBERS = ["EN-55102-77", "DOM-88123-40"]


def signal(kind: str, who: dict[str, Any], customer_number: str, **extra: Any) -> dict[str, Any]:
    return {
        "creditor_kind": kind,
        "arrears_amount": "638.45",
        "signal_date": "2026-03-01",
        "customer_number": customer_number,
        "resident": who,
        **extra,
    }


class Chain:
    def __init__(self, stack: EmbeddedStack, http: httpx.AsyncClient) -> None:
        self.stack, self.http = stack, http

    def as_(self, organisation: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.api_token(organisation, role)}"}

    async def send(self, creditor: str, body: dict[str, Any], key: str) -> httpx.Response:
        return await self.http.post(
            f"{self.stack.service_url('intake')}/v1/signals",
            json=body,
            headers={**self.as_(creditor, "creditor"), "Idempotency-Key": key},
        )

    async def worker(
        self, method: str, path: str, organisation: str = UTRECHT, **kwargs: Any
    ) -> httpx.Response:
        return await self.http.request(
            method,
            f"{self.stack.service_url('intake')}/v1{path}",
            headers=self.as_(organisation, "worker"),
            **kwargs,
        )


async def signal_events(kafka: KafkaAccess) -> list[bytes]:
    """Every message on the signals topic, from the beginning to its end as it is now."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    found: list[bytes] = []
    try:
        partitions = await partitions_of(consumer, [SIGNALS.name])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 30
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            assert time.monotonic() < deadline, "could not read the signals topic to its end"
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return found


def now() -> str:
    """Each attempt and answer at the moment it is recorded: never before the signal."""
    return datetime.now(UTC).isoformat()


def types_of(messages: list[bytes], signal_id: str) -> list[str]:
    envelopes = [json.loads(m) for m in messages]
    return [e["type"].split(".")[-2] for e in envelopes if e["subject"] == signal_id]


async def test_a_signal_reached_and_accepted_becomes_a_referral_and_a_declined_one_closes(chain):
    # Its own Kafka: analytics counts every signal on the topic from the start.
    stack = chain(("intake", "trajectory", "analytics"), isolated=True, timeout=120)
    async with httpx.AsyncClient(timeout=30) as http:
        c = Chain(stack, http)

        # An energy supplier's signal, with its end-of-supply notice: three days to reach out.
        body = signal("energy", WILLEMIJN, CUSTOMER_NUMBERS[0], end_of_supply_on="2026-03-30")
        sent = await c.send(ENERGY, body, "EN-2026-0001")
        assert sent.status_code == 201, sent.text
        signal_id = sent.json()["signal_id"]
        again = await c.send(ENERGY, body, "EN-2026-0001")
        assert (again.status_code, again.json()["signal_id"]) == (200, signal_id)
        other = await c.send(ENERGY, {**body, "arrears_amount": "1.00"}, "EN-2026-0001")
        assert other.status_code == 409

        # The serving organisation sees it; the list says nothing about who it is.
        listed = await c.worker("GET", "/signals", params={"state": "open"})
        [open_signal] = [s for s in listed.json() if s["signal_id"] == signal_id]
        assert WILLEMIJN["name"] not in listed.text
        assert open_signal["creditor_kind"] == "energy" and not open_signal["overdue"]
        due = datetime.fromisoformat(open_signal["outreach_due_by"])
        assert due - datetime.fromisoformat(open_signal["received_at"]) == timedelta(days=3)
        one = (await c.worker("GET", f"/signals/{signal_id}")).json()
        assert one["details"]["resident"]["name"] == WILLEMIJN["name"]
        assert one["details"]["customer_number"] == CUSTOMER_NUMBERS[0]
        # Another organisation does not even learn that it exists.
        elsewhere = await c.worker("GET", f"/signals/{signal_id}", organisation=AMERSFOORT)
        assert elsewhere.status_code == 404
        assert (await c.worker("GET", "/signals", organisation=AMERSFOORT)).json() == []

        # A letter that does not reach her; an answer before anyone reached her is refused.
        letter = {"method": "letter", "reached": False, "attempted_at": now()}
        assert (await c.worker("POST", f"/signals/{signal_id}/outreach", json=letter)).json()[
            "attempt"
        ] == 1
        consent = {"purposes": ["reminders"], "granted_at": now()}
        accepts = {"accepts_help": True, "consent": consent, "answered_at": now()}
        early = await c.worker("POST", f"/signals/{signal_id}/answer", json=accepts)
        assert early.status_code == 409 and "reached" in early.json()["detail"]
        call = {"method": "phone", "reached": True, "attempted_at": now()}
        await c.worker("POST", f"/signals/{signal_id}/outreach", json=call)
        accepts = {**accepts, "answered_at": now()}
        answered = await c.worker("POST", f"/signals/{signal_id}/answer", json=accepts)
        assert answered.status_code == 200, answered.text
        assert answered.json()["referral_state"] == "accepted"
        referral_id = answered.json()["referral_id"]

        # The referral opens a trajectory at the organisation, a crisis (supply ends).
        async def opened() -> Any:
            found = await http.get(
                f"{stack.service_url('trajectory')}/v1/trajectories",
                params={"referral_id": referral_id},
                headers=c.as_(UTRECHT, "worker"),
            )
            return found.json()[0] if found.status_code == 200 and found.json() else None

        trajectory = await eventually(opened, "the trajectory of the accepted signal", 60)
        assert trajectory["organisation_id"] == UTRECHT and trajectory["crisis"] is True
        # The resident is now a client, with the consent they gave.
        consents = await c.worker("GET", f"/clients/{trajectory['client_ref']}/consents")
        assert [x["purpose"] for x in consents.json()] == ["reminders"]
        closed = await c.worker("GET", f"/signals/{signal_id}")
        assert closed.json()["state"] == "accepted"
        assert closed.json()["referral_id"] == referral_id
        assert closed.json()["first_outreach_at"] is not None
        twice = await c.worker("POST", f"/signals/{signal_id}/answer", json=accepts)
        assert twice.status_code == 409
        # She asks to be forgotten as a client: the signal she came from goes too.
        erasure = await c.worker("POST", f"/clients/{trajectory['client_ref']}/erasure")
        assert erasure.status_code == 202
        assert (await c.worker("GET", f"/signals/{signal_id}")).status_code == 404

        # A housing corporation's signal: a home visit reaches him, and he declines.
        sent = await c.send(HOUSING, signal("housing", GERRIT, CUSTOMER_NUMBERS[1]), "DOM-7731")
        declined_id = sent.json()["signal_id"]
        visit = {"method": "home_visit", "reached": True, "attempted_at": now()}
        await c.worker("POST", f"/signals/{declined_id}/outreach", json=visit)
        declines = {"accepts_help": False, "answered_at": now()}
        answer = await c.worker("POST", f"/signals/{declined_id}/answer", json=declines)
        assert answer.json()["signal"]["state"] == "declined"
        assert answer.json()["referral_id"] is None
        declined = await c.worker("GET", "/signals", params={"state": "declined"})
        assert [s["signal_id"] for s in declined.json()] == [declined_id]

        # Outside the chain's area: refused, nothing kept.
        outside = {**GERRIT, "postcode": "1011 AB"}
        refused = await c.send(HOUSING, signal("housing", outside, "DOM-1"), "DOM-7732")
        assert refused.status_code == 422 and "outside" in refused.json()["detail"]
        # Only energy suppliers give an end-of-supply notice: refused, saying which field.
        water = signal("water", GERRIT, "WB-9", end_of_supply_on="2026-03-30")
        wrong = await c.send(WATER, water, "WB-7733")
        assert wrong.status_code == 422 and "end_of_supply_on" in wrong.text
        # Only a creditor sends signals; a creditor reads none.
        assert (await c.worker("POST", "/signals", json=body)).status_code == 403
        creditor_reads = await http.get(
            f"{stack.service_url('intake')}/v1/signals", headers=c.as_(ENERGY, "creditor")
        )
        assert creditor_reads.status_code == 403

        # The resident asks to be forgotten: the declined signal is deleted at once.
        erased = await c.worker("POST", f"/signals/{declined_id}/erasure")
        assert erased.status_code == 202
        assert (await c.worker("GET", f"/signals/{declined_id}")).status_code == 404

        # Analytics counted both from the topic: received, reached, and the two answers.
        async def figures() -> Any:
            answer = await http.get(
                f"{stack.service_url('analytics')}/v1/signal-figures",
                params={"period": "all"},
                headers=c.as_(UTRECHT, "manager"),
            )
            rows = answer.json()["rows"]
            return rows if rows and rows[0]["help_declined"] == 1 else None

        [row] = await eventually(figures, "the signal figures", 60)
        counted = {k: row[k] for k in ("signals_received", "residents_reached", "help_accepted")}
        assert counted == {"signals_received": 2, "residents_reached": 2, "help_accepted": 1}
        assert row["outreach_overdue"] == 0 and row["days_to_first_outreach"] is not None

    messages = await signal_events(stack.kafka)
    assert types_of(messages, signal_id) == [
        "SignalReceived",
        "SignalOutreachAttempted",
        "SignalOutreachAttempted",
        "SignalHelpAccepted",
        "SignalDataDeleted",
    ]
    assert types_of(messages, declined_id) == [
        "SignalReceived",
        "SignalOutreachAttempted",
        "SignalHelpDeclined",
        "SignalDataDeleted",
    ]
    # Nothing on the topic or in the logs points to the person or their debt.
    traces = [
        *(who[f] for who in (WILLEMIJN, GERRIT) for f in ("name", "phone", "email", "street")),
        *WILLEMIJN["name"].split(),
        *CUSTOMER_NUMBERS,
        "638.45",
    ]
    ours = [m for m in messages if json.loads(m)["subject"] in (signal_id, declined_id)]
    for message in ours:
        for trace in traces:
            assert trace.encode() not in message, trace
    for service in ("intake", "trajectory", "analytics"):
        log = stack.log_path(service).read_text(encoding="utf-8")
        for trace in traces:
            assert trace not in log, f"{service}'s log holds {trace!r}"


# A million times as fast: the 14 days of the window pass in 1.2 s, six months in 16 s.
SPEED = 1_000_000


async def test_a_signal_without_outreach_is_flagged_and_deleted_after_six_months(chain):
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    stack = chain(
        ("intake",),
        timeout=120,
        extra_env={
            "KETENBUS_CLOCK_START": start.isoformat(),
            "KETENBUS_CLOCK_ANCHOR": repr(time.time()),
            "KETENBUS_CLOCK_SPEED": str(SPEED),
            "SIGNAL_CHECK_SECONDS": "0.2",
        },
    )
    # As the demo's simulation would: through the devstack's ChainClient.
    client = ChainClient(stack.urls(), stack.api_token)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            c = Chain(stack, http)
            sent = await client.send_signal(
                HOUSING, signal("housing", GERRIT, "DOM-1"), "DOM-2026-0001"
            )
            signal_id = sent["signal_id"]

            async def flagged() -> Any:
                found = await client.signals(UTRECHT, overdue="true")
                return next((s for s in found if s["signal_id"] == signal_id), None)

            overdue = await eventually(flagged, "the overdue flag", 30)
            received = datetime.fromisoformat(overdue["received_at"])
            assert datetime.fromisoformat(overdue["overdue_flagged_at"]) - received >= timedelta(
                days=14
            )
            assert overdue["attempts"] == [] and overdue["state"] == "open"

            async def deleted() -> bool:
                return (await c.worker("GET", f"/signals/{signal_id}")).status_code == 404

            await eventually(deleted, "the deletion after six months", 90)
    finally:
        await client.close()

    messages = [json.loads(m) for m in await signal_events(stack.kafka)]
    ours = {m["type"].split(".")[-2]: m["data"] for m in messages if m["subject"] == signal_id}
    assert list(ours) == ["SignalReceived", "SignalOutreachOverdue", "SignalDataDeleted"]
    assert ours["SignalDataDeleted"]["reason"] == "retention_expired"
    deleted_at = datetime.fromisoformat(ours["SignalDataDeleted"]["deleted_at"])
    assert deleted_at >= months_after(received, 6)
