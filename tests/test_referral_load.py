"""Two hundred referrals to one organisation at once, from one GP, against the real intake
process on its own Kafka and SecantusDB (loopback only). Before issue 9 every referral wrote
the organisation's caseload document in its transaction and a third of them got 503; now
every one is answered 201 (or 200 for a repeated Idempotency-Key), and the capacity rule
holds exactly: as many accepted as there are places, the rest on the waiting list. Once
against one intake process, once with the referrals spread over two replicas and each repeat
sent to the other replica at the same moment: the Idempotency-Key and the places hold across
replicas, because both live in intake's database. One stack with two replicas serves both
runs, each for an organisation of its own (Amersfoort, Utrecht), so neither sees the other's
places.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from ketenbus.devstack.stack import EmbeddedStack

pytestmark = [pytest.mark.stack]

GP = "huisarts-de-linde"
PLACES = 20
REFERRALS = 200
REPEATS = 10  # referrals sent twice at the same moment under the same Idempotency-Key


@dataclass(frozen=True)
class Run:
    replicas: int  # intake replicas the referrals are sent to
    organisation_id: str
    postcodes: tuple[str, ...]  # the organisation's areas in intake's region table

    @property
    def name(self) -> str:
        return f"{self.replicas}r"


RUNS = [
    Run(1, "welzijn-utrecht", ("3511", "3514", "3521")),
    Run(2, "welzijn-amersfoort", ("3811", "3812", "3813")),
]


def resident(run: Run, number: int) -> dict[str, Any]:
    """Made-up residents of the run's organisation, one per number and run."""
    return {
        "name": f"Testpersoon Run{run.replicas} Nummer{number:04d}",
        "date_of_birth": f"19{50 + number % 50:02d}-0{1 + number % 9}-1{number % 10}",
        "postcode": f"{run.postcodes[number % len(run.postcodes)]} AB",
        "phone": f"06-{10_000_000 + number}",
        "email": f"testpersoon{run.replicas}.{number}@example.org",
        "language": "nl",
        "preferred_channel": "email",
    }


def crisis(number: int) -> bool:
    return number % 7 == 0


def referral(run: Run, number: int) -> dict[str, Any]:
    return {
        "referrer_type": "gp",
        "referrer_reference": f"HDL-LOAD-{run.name}-{number}",
        "topic": "debts_material",
        "urgency": {"threatened_eviction": crisis(number), "disconnection": False},
        "client": resident(run, number),
        "consent": {
            "given_by": "client",
            "purposes": ["referral_feedback"],
            "granted_at": "2026-03-02T09:10:00+01:00",
        },
    }


@pytest.fixture(scope="module")
def load_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    home = tmp_path_factory.mktemp("referral-load")
    capacity = home / "capacity.json"
    places = {run.organisation_id: PLACES for run in RUNS}
    capacity.write_text(json.dumps({"organisations": places}))
    stack = EmbeddedStack(
        home / "stack",
        partners=[GP],
        replicas=2,
        outlive_caller=False,
        database_prefix=f"load{uuid.uuid4().hex[:8]}",
    )
    stack.start_infrastructure(timeout=120)
    try:
        stack.start_services(
            ("intake",),
            {
                "CAPACITY_FILE": str(capacity),
                # The rate limit is not what is tested here: room for both runs' bursts.
                "REFERRAL_RATE_PER_MINUTE": "100000",
                "REFERRAL_BURST": str(len(RUNS) * (REFERRALS + REPEATS)),
            },
        )
        stack.wait_ready(stack.replicas_of("intake"), timeout=120)
        yield stack
    finally:
        stack.stop()


@pytest.mark.parametrize("run", RUNS, ids=["one-intake", "two-intake-replicas"])
async def test_concurrent_referrals_to_one_organisation_are_all_answered_and_triaged_exactly(
    load_stack: EmbeddedStack, run: Run
):
    # With two replicas, referral n goes to one and its repeat to the other.
    urls = [f"{url}/v1/referrals" for url in load_stack.service_urls("intake")][: run.replicas]
    token = load_stack.api_token(GP, "referrer")
    limits = httpx.Limits(max_connections=REFERRALS + REPEATS)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:

        async def refer(number: int, turn: int) -> tuple[int, httpx.Response]:
            key = f"load-{run.name}-{number:04d}"
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
            url = urls[turn % len(urls)]
            return number, await http.post(url, json=referral(run, number), headers=headers)

        answers = await asyncio.gather(
            *(refer(n, n) for n in range(REFERRALS)), *(refer(n, n + 1) for n in range(REPEATS))
        )

    codes = Counter(answer.status_code for _, answer in answers)
    assert set(codes) <= {200, 201}, {c: n for c, n in codes.items()}
    assert codes[201] == REFERRALS and codes[200] == REPEATS

    made: dict[int, dict[str, Any]] = {}
    for number, answer in answers:
        body = answer.json()
        # A repeat is the same referral, not a second one.
        assert made.setdefault(number, body)["referral_id"] == body["referral_id"]
    answered = Counter(body["status"] for body in made.values())
    assert set(answered) == {"accepted", "waitlisted"} and answered["accepted"] <= PLACES

    # Every place taken, the rest waiting. With two replicas a repeat may claim a place for a
    # moment and give it back when the other replica wins its key; the waiting list is then
    # looked at again, so one referral answered "waitlisted" may have been let in since.
    states = await _referral_states(load_stack, set(body["referral_id"] for body in made.values()))
    assert Counter(states.values()) == {"accepted": PLACES, "waitlisted": REFERRALS - PLACES}
    for body in made.values():
        if body["status"] == "accepted":
            assert states[body["referral_id"]] == "accepted"

    # The places held are exactly the accepted referrals.
    held = await _places_held(load_stack, run.organisation_id)
    assert held == {referral for referral, state in states.items() if state == "accepted"}


async def _referral_states(stack: EmbeddedStack, referral_ids: set[str]) -> dict[str, str]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo_url)
    try:
        referrals = client[stack.database_name("intake")].referrals
        found = referrals.find({"_id": {"$in": sorted(referral_ids)}}, projection=["state"])
        return {r["_id"]: r["state"] async for r in found}
    finally:
        await client.close()


async def _places_held(stack: EmbeddedStack, organisation_id: str) -> set[str]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo_url)
    try:
        places = client[stack.database_name("intake")].places
        return {p["_id"] async for p in places.find({"organisation_id": organisation_id})}
    finally:
        await client.close()
