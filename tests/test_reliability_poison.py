"""Poison messages: whatever lands on a topic, every consumer dead-letters what it cannot read,
with the reason, stays alive and ready, and handles the good events that follow.

Hypothesis writes the bad messages; the test makes sure of the breadth. Each example puts,
on every topic a service of the chain reads (the internal ones and the partners' inbound
ones):
- for the topic as a whole (every reader must dead-letter it): bytes that are not JSON, JSON
  that is not an object, an empty value (a tombstone), a wrong `specversion`, a broken
  envelope attribute, an event over 256 KiB, and an unknown event type on a partner's topic
  (on a stream an unknown type is skipped by every reader, none dead-letters it: producers may
  add types to a stream before every consumer knows them);
- for every service reading the topic, an event type that service handles there, with an
  unsupported version, a field of the wrong type, or a required field left out (the readers
  that do not handle that type pass it by; the ones that do dead-letter it);
then one good event on the same partition. Bad messages carry odd headers too (no value,
bytes that are not UTF-8, a content type that promises JSON).

Checked per bad message: every consumer that should has put it on `<topic>.dlq` exactly once,
with an `x-dlq-reason` that names the failure (and the field, for a field); after each
example, every service answers /healthz and /readyz, the good events are in the inboxes of
the services that handle them, and every reader has committed past them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import (
    Event,
    InvalidEventData,
    MalformedEnvelope,
    UndeliverableEvent,
    UnknownEventType,
    UnsupportedEventVersion,
    decode,
    wrap,
)
from ketenbus.contracts.events import (
    REGISTRY,
    ClientErasureRequested,
    ClientOptedOut,
    ClientWaitlisted,
    ConsentStatement,
    FirstContactMade,
    KpiSnapshotPublished,
    KpiSnapshotPublishedV2,
    ModuleAssigned,
    ModuleCompleted,
    PartnerReferralAccepted,
    ReferralAccepted,
    ReferralSubmitted,
    Urgency,
)
from ketenbus.contracts.topics import (
    BENCHMARKS,
    CLIENTS,
    DELIVERIES,
    ENROLMENTS,
    REFERRALS,
    TRAJECTORIES,
    dead_letter_topic,
    partner_inbound,
)
from ketenbus.contracts.values import (
    Channel,
    ConsentGiver,
    ConsentPurpose,
    Language,
    ReferralTopic,
    ReferrerType,
    new_id,
)
from ketenbus.devstack import partner_keys, stack_state
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.broker import partitions_of

from .reliability import accepted_referral, waitlisted_client

pytestmark = [pytest.mark.stack, pytest.mark.chain]

SERVICES = ("intake", "trajectory", "notifications", "learning", "analytics")
GP, DEBT = "huisarts-de-linde", "schuldhulp-midden"
WELFARE = "welzijn-utrecht"  # as in tests/reliability.py, whose builders are used too
MAX_EVENT_BYTES = 256 * 1024


# ------------------------------------------------------------------ valid events to spoil


def _now() -> datetime:
    return datetime.now(UTC)


def _referral_submitted(partner: str, keys: dict[str, bytes]) -> Event:
    reference = f"poison-{uuid.uuid4().hex[:12]}"
    client = {"name": "Proef Persoon", "date_of_birth": "1980-02-03", "postcode": "3522 BK"}
    return ReferralSubmitted(
        partner_organisation_id=partner,
        referrer_type=ReferrerType.GP,
        referrer_reference=reference,
        topic=ReferralTopic.PSYCHOSOCIAL,
        urgency=Urgency(),
        consent=ConsentStatement(
            given_by=ConsentGiver.CLIENT,
            purposes=(ConsentPurpose.REFERRAL_FEEDBACK,),
            granted_at=_now(),
        ),
        client=sealing.seal(
            json.dumps(client).encode(),
            data_key=sealing.new_key(),
            key_id=f"{partner}-{reference}"[:64],
            recipient_key=keys[partner],
        ),
        submitted_at=_now(),
    )


def _factories(keys: dict[str, bytes]) -> dict[type[Event], Any]:
    """One valid event of each type used here, made fresh (new ids) on every call."""
    return {
        ReferralSubmitted: lambda partner: _referral_submitted(partner, keys),
        PartnerReferralAccepted: lambda partner: PartnerReferralAccepted(
            partner_organisation_id=partner,
            partner_referral_id=new_id("prf"),
            accepted_at=_now(),
        ),
        ReferralAccepted: lambda _: accepted_referral(_now()).data,
        ClientWaitlisted: lambda _: waitlisted_client(_now(), position=1).data,
        ClientErasureRequested: lambda _: ClientErasureRequested(
            client_ref=new_id("cl"), organisation_id=WELFARE, requested_at=_now()
        ),
        FirstContactMade: lambda _: FirstContactMade(
            trajectory_id=new_id("trj"),
            client_ref=new_id("cl"),
            organisation_id=WELFARE,
            referral_id=new_id("ref"),
            occurred_at=_now(),
        ),
        ModuleAssigned: lambda _: ModuleAssigned(
            trajectory_id=new_id("trj"),
            client_ref=new_id("cl"),
            organisation_id=WELFARE,
            enrolment_id=new_id("enr"),
            module_id="grip-op-je-geld",
            language=Language.NL,
            assigned_at=_now(),
        ),
        ModuleCompleted: lambda _: ModuleCompleted(
            enrolment_id=new_id("enr"),
            client_ref=new_id("cl"),
            organisation_id=WELFARE,
            module_id="grip-op-je-geld",
            completed_at=_now(),
        ),
        ClientOptedOut: lambda _: ClientOptedOut(
            client_ref=new_id("cl"),
            organisation_id=WELFARE,
            channel=Channel.SMS,
            opted_out_at=_now(),
        ),
        KpiSnapshotPublished: lambda _: KpiSnapshotPublished(
            snapshot_id=new_id("kpi"),
            organisation=WELFARE,
            pseudonymised=True,
            period="2026-10",
            cells=(),
            published_at=_now(),
        ),
        KpiSnapshotPublishedV2: lambda _: KpiSnapshotPublishedV2(
            snapshot_id=new_id("kpi"),
            organisation=WELFARE,
            pseudonymised=True,
            period="2026-Q3",
            cells=(),
            published_at=_now(),
        ),
    }


@dataclass(frozen=True)
class Line:
    """A topic, who writes on it (the envelope's source), and the good event that follows
    the bad ones on it."""

    topic: str
    source: str
    good: type[Event]
    partner: str = ""


FACTORY_TYPES = tuple(_factories({}))

LINES = (
    Line(partner_inbound(GP).name, GP, ReferralSubmitted, GP),
    Line(partner_inbound(DEBT).name, DEBT, ReferralSubmitted, DEBT),
    Line(REFERRALS.name, "intake", ClientWaitlisted),
    Line(CLIENTS.name, "intake", ClientErasureRequested),
    Line(TRAJECTORIES.name, "trajectory", ModuleAssigned),
    Line(ENROLMENTS.name, "learning", ModuleCompleted),
    Line(DELIVERIES.name, "notifications", ClientOptedOut),
    Line(BENCHMARKS.name, "analytics", KpiSnapshotPublishedV2),
)


# The apps of these two subscribe to every partner's inbound topic (see their app.py): intake
# for referrals, trajectory for the answers to hand-offs.
PARTNER_READERS = frozenset({"intake", "trajectory"})


def arrives_on(event: type[Event], line: Line) -> bool:
    if event.stream is not None:
        return event.stream.name == line.topic
    return bool(line.partner) and event.owner == "partners"


@dataclass(frozen=True)
class Consumer:
    service: str
    handled: frozenset[type[Event]]
    names: frozenset[str]  # event names without version, as the kit compares them

    def handles_on(self, line: Line) -> list[type[Event]]:
        """The types (of those made here) this service handles on the line's topic."""
        return [e for e in FACTORY_TYPES if e in self.handled and arrives_on(e, line)]


def _consumers() -> dict[str, Consumer]:
    consumers = {}
    for service in SERVICES:
        handlers = importlib.import_module(f"ketenbus.{service}.handlers").handlers
        handled = frozenset(handlers.handlers)
        names = frozenset(e.event_type().rpartition(".")[0] for e in handled)
        consumers[service] = Consumer(service, handled, names)
    return consumers


CONSUMERS = _consumers()


def readers(line: Line) -> set[str]:
    """The services subscribed to the line's topic."""
    if line.partner:
        return set(PARTNER_READERS)
    return {
        c.service
        for c in CONSUMERS.values()
        if any(e.stream is not None and e.stream.name == line.topic for e in c.handled)
    }


# ------------------------------------------------------------------ the bad messages


@dataclass
class Poison:
    id: str
    line: Line
    kind: str
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    expected: set[str]  # the services that must dead-letter it
    category: str  # the start of the reason
    field: str | None = None  # the field the reason must name


KNOWN_NAMES = {event_type.rpartition(".")[0] for event_type in REGISTRY}

WHOLE_TOPIC_KINDS = (
    "not_json",
    "json_not_object",
    "tombstone",
    "wrong_specversion",
    "broken_envelope",
    "unknown_type",
    "oversized",
)
TYPE_KINDS = ("unsupported_version", "wrong_field_type", "missing_field")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
odd_headers = st.lists(
    st.tuples(
        st.sampled_from(["content-type", "ce_type", "x-partner-note", "correlation_id"]),
        st.one_of(
            st.none(),
            st.binary(max_size=8),
            st.sampled_from([b"application/json", b"text/plain", b"application/cloudevents+json"]),
        ),
    ),
    max_size=2,
)


def _wrong_type(value: Any) -> st.SearchStrategy[Any]:
    """A JSON value of another type than `value` (strict decoding turns none of them into it)."""
    if isinstance(value, str):
        return st.integers() | st.booleans() | st.lists(st.integers(), max_size=2)
    if isinstance(value, bool):
        return st.text(max_size=5) | st.lists(st.booleans(), max_size=2)
    if isinstance(value, int | float):
        return st.text(max_size=5) | st.booleans() | st.lists(st.integers(), max_size=2)
    if isinstance(value, list):
        return (
            st.integers()
            | st.text(max_size=5)
            | st.dictionaries(st.text(max_size=3), st.integers())
        )
    return st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2)


def _template(event: type[Event], line: Line, factories: dict[type[Event], Any]) -> dict[str, Any]:
    made = factories[event](line.partner)
    return json.loads(wrap(made, source=line.source if line.partner else event.owner).to_bytes())


def draw_poison(
    draw: Any, line: Line, kind: str, factories: dict[type[Event], Any], target: str | None
) -> Poison:
    poison_id = uuid.uuid4().hex
    headers = [("x-poison-id", poison_id.encode()), *draw(odd_headers)]
    everyone = readers(line)
    if target is None:
        event = draw(st.sampled_from([e for e in FACTORY_TYPES if arrives_on(e, line)]))
    else:
        event = draw(st.sampled_from(CONSUMERS[target].handles_on(line)))
    envelope = _template(event, line, factories)
    expected, category, field_name = everyone, "MalformedEnvelope", None
    value: bytes | None
    if kind == "not_json":
        value = draw(st.binary(max_size=300).filter(lambda b: not _parses(b)))
    elif kind == "json_not_object":
        nested = st.integers(250, 5000).map(lambda n: "[" * n + "]" * n)  # past any parser's depth
        value = draw(
            st.one_of(json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps), nested)
        ).encode()
    elif kind == "tombstone":
        value = None
    elif kind == "wrong_specversion":
        envelope["specversion"] = draw(
            st.sampled_from(["0.3", "1", "2.0", ""]) | st.integers() | st.none()
        )
        value = json.dumps(envelope).encode()
    elif kind == "broken_envelope":
        # (A broken `data` as a whole counts as invalid data: covered by the field kinds.)
        name = draw(st.sampled_from(["id", "source", "type", "time", "subject", "correlationid"]))
        if draw(st.booleans()):
            del envelope[name]
        elif name == "type":  # (an empty type is a string: an unknown type, not a broken one)
            envelope[name] = draw(_wrong_type(envelope[name]))
        else:
            envelope[name] = draw(_wrong_type(envelope[name]) | st.just(""))
        value = json.dumps(envelope).encode()
    elif kind == "unknown_type":
        name = draw(st.from_regex(r"[A-Z][a-z]{2,12}", fullmatch=True))
        envelope["type"] = draw(
            st.just(f"nl.ketenbus.{event.owner}.Onbekend{name}.v1")
            | st.text(max_size=30).filter(lambda t: t.rpartition(".")[0] not in KNOWN_NAMES)
        )
        # A partner's topic carries only what the chain defined: every reader refuses it.
        # On a stream a producer may add a type before its readers know it: they skip it.
        expected = everyone if line.partner else set()
        category = "UnknownEventType"
        value = json.dumps(envelope).encode()
    elif kind == "oversized":
        envelope["data"]["toelichting"] = "x" * (MAX_EVENT_BYTES + draw(st.integers(1, 4096)))
        value = json.dumps(envelope).encode()
    else:
        assert target is not None
        # Only the readers that handle this type dead-letter it; the others pass it by.
        name = event.event_type().rpartition(".")[0]
        expected = {s for s in everyone if name in CONSUMERS[s].names}
        assert target in expected
        required = sorted(k for k, f in event.model_fields.items() if f.is_required())
        if kind == "unsupported_version":
            # A version nobody publishes (KpiSnapshotPublished has a v2: not that one).
            versions = st.integers(2, 10_000).filter(lambda v: f"{name}.v{v}" not in REGISTRY)
            envelope["type"] = f"{name}.v{draw(versions)}"
            category = "UnsupportedEventVersion"
        elif kind == "wrong_field_type":
            field_name = draw(st.sampled_from(required))
            envelope["data"][field_name] = draw(_wrong_type(envelope["data"][field_name]))
            category = "InvalidEventData"
        else:
            field_name = draw(st.sampled_from(required))
            del envelope["data"][field_name]
            category = "InvalidEventData"
        value = json.dumps(envelope).encode()
    poison = Poison(poison_id, line, kind, value, headers, expected, category, field_name)
    _check_it_is_poison(poison)
    return poison


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _check_it_is_poison(poison: Poison) -> None:
    """The message is bad in the way the test means (so a pass proves the consumers right)."""
    errors = {
        "MalformedEnvelope": MalformedEnvelope,
        "UnknownEventType": UnknownEventType,
        "UnsupportedEventVersion": UnsupportedEventVersion,
        "InvalidEventData": InvalidEventData,
    }
    if poison.value is None:
        return
    try:
        decode(poison.value, REGISTRY)
    except UndeliverableEvent as error:
        assert type(error) is errors[poison.category], (poison.kind, error)
        if poison.field:
            assert f"data.{poison.field}" in error.reason, (poison.kind, error.reason)
        return
    raise AssertionError(f"{poison.kind} on {poison.line.topic} decoded fine")


# ------------------------------------------------------------------ watching the chain


class DeadLetters:
    """Reads every dead-letter topic from where it ended when the test began."""

    def __init__(self, kafka: KafkaAccess) -> None:
        self.kafka = kafka
        self.seen: dict[str, list[Any]] = defaultdict(list)
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    def check(self) -> None:
        if self.task is not None and self.task.done():
            self.task.result()  # raises what stopped the reader
            raise AssertionError("the dead-letter reader stopped")

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            **self.kafka.client_options(), group_id=None, auto_offset_reset="earliest"
        )
        await self.consumer.start()
        partitions = await partitions_of(
            self.consumer, [dead_letter_topic(line.topic) for line in LINES]
        )
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self.consumer.position(partition)  # fixes "the end" before anything is sent
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.consumer is not None
        while True:
            for records in (await self.consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    headers = dict(record.headers)
                    poison_id = headers.get("x-poison-id")
                    if poison_id is not None:
                        self.seen[poison_id.decode()].append(record)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.consumer is not None:
            await self.consumer.stop()


async def answers(http: httpx.AsyncClient, url: str) -> bool:
    try:
        health = await http.get(f"{url}/healthz")
        ready = await http.get(f"{url}/readyz")
    except httpx.HTTPError:
        return False
    return health.status_code == 200 and ready.status_code == 200


@dataclass
class Chain:
    stack: Any
    producer: AIOKafkaProducer
    letters: DeadLetters
    offsets: dict[str, AIOKafkaConsumer]
    db: dict[str, Any]
    http: httpx.AsyncClient
    factories: dict[type[Event], Any]
    pids: dict[str, int] = field(default_factory=dict)
    examples: int = 0
    poisons: int = 0


async def run_example(chain: Chain, batches: list[tuple[Line, list[Poison]]]) -> None:
    goods = []
    for line, poisons in batches:
        key = new_id("cl").encode()  # one partition for the bad ones and the good one after
        for poison in poisons:
            await chain.producer.send(line.topic, poison.value, key=key, headers=poison.headers)
        event = chain.factories[line.good](line.partner)
        envelope = wrap(event, source=line.source)
        sent = await chain.producer.send_and_wait(line.topic, envelope.to_bytes(), key=key)
        goods.append((line, envelope, TopicPartition(line.topic, sent.partition), sent.offset))

    everything = [p for _, poisons in batches for p in poisons]

    async def done() -> bool:
        chain.letters.check()
        for poison in everything:
            if len({_consumer_of(r) for r in chain.letters.seen[poison.id]}) < len(poison.expected):
                return False
        for line, envelope, partition, offset in goods:
            for service in readers(line):
                committed = await chain.offsets[service].committed(partition)
                if committed is None or committed <= offset:
                    return False
                if line.good in CONSUMERS[service].handled and not await chain.db[
                    service
                ].inbox.find_one({"_id": f"{service}:{envelope.id}"}):
                    return False
        return True

    deadline = time.monotonic() + 60
    while not await done():
        if time.monotonic() > deadline:
            raise AssertionError(_what_is_missing(chain, everything))
        await asyncio.sleep(0.1)

    for poison in everything:
        letters = chain.letters.seen[poison.id]
        by_consumer = defaultdict(list)
        for record in letters:
            by_consumer[_consumer_of(record)].append(record)
        assert set(by_consumer) == poison.expected, (poison.kind, poison.line.topic)
        for service, records in by_consumer.items():
            assert len(records) == 1, f"{service} dead-lettered {poison.kind} {len(records)}x"
            [record] = records
            assert record.topic == dead_letter_topic(poison.line.topic)
            assert record.value == (poison.value or b"") or (
                poison.value is None and record.value is None
            )
            reason = dict(record.headers)["x-dlq-reason"].decode()
            assert reason.startswith(f"{poison.category}: "), (poison.kind, service, reason)
            if poison.field:
                assert f"data.{poison.field}" in reason, (poison.kind, service, reason)
            if poison.kind == "oversized":
                assert "exceeds" in reason
    for service in SERVICES:
        assert await answers(chain.http, chain.stack.service_url(service)), service
        assert service_pids(chain.stack)[service] == chain.pids[service], f"{service} restarted"
    chain.examples += 1
    chain.poisons += len(everything)


def service_pids(stack: Any) -> dict[str, int | None]:
    state = stack_state.load(stack.home)
    assert state is not None
    return {s: state.components[s].pid for s in SERVICES}


def _consumer_of(record: Any) -> str:
    return dict(record.headers)["x-dlq-consumer"].decode()


def _what_is_missing(chain: Chain, poisons: list[Poison]) -> str:
    missing = []
    for poison in poisons:
        got = {_consumer_of(r) for r in chain.letters.seen[poison.id]}
        if got != poison.expected:
            missing.append(
                f"{poison.kind} on {poison.line.topic}: expected {sorted(poison.expected)}, "
                f"dead-lettered by {sorted(got)}"
            )
    tails = {s: chain.stack.log_tail(s, 5) for s in SERVICES}
    return "not everything arrived:\n" + "\n".join(missing[:20]) + f"\n{tails}"


@pytest.fixture
async def running_chain(chain):
    stack = chain(SERVICES, timeout=120, log_level="WARNING")
    keys = {p: partner_keys.key(stack.home, p) for p in (GP, DEBT)}
    producer = AIOKafkaProducer(
        **stack.kafka.client_options(),
        acks="all",
        max_request_size=2 * 1024 * 1024,
    )
    await producer.start()
    letters = DeadLetters(stack.kafka)
    await letters.start()
    offsets = {}
    for service in SERVICES:
        offsets[service] = AIOKafkaConsumer(
            **stack.kafka.client_options(), group_id=service, enable_auto_commit=False
        )
        await offsets[service].start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url)
    http = httpx.AsyncClient(timeout=5.0)
    running = Chain(
        stack,
        producer,
        letters,
        offsets,
        {s: mongo[stack.database_name(s)] for s in SERVICES},
        http,
        _factories(keys),
        pids=service_pids(stack),
    )
    try:
        yield running
    finally:
        await http.aclose()
        await mongo.close()
        for consumer in offsets.values():
            await consumer.stop()
        await letters.stop()
        await producer.stop()


def _targets() -> list[tuple[Line, str]]:
    """Every (topic, service reading it) pair with an event type the service handles there."""
    pairs = []
    for line in LINES:
        for service in sorted(readers(line)):
            if CONSUMERS[service].handles_on(line):
                pairs.append((line, service))
    return pairs


def test_every_reader_of_every_topic_is_covered():
    """The breadth the poison test relies on: each service, each topic it reads."""
    covered = {(line.topic, service) for line, service in _targets()}
    for line in LINES:
        assert readers(line), line.topic
        for service in readers(line):
            assert (line.topic, service) in covered, (line.topic, service)
    assert {s for _, s in covered} == set(SERVICES)


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: each example runs against live processes; the first failure says enough.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
async def test_bad_messages_go_to_the_dead_letter_topic_and_the_chain_goes_on(running_chain, data):
    chain = running_chain
    batches = []
    for line in LINES:
        poisons = [
            draw_poison(data.draw, line, kind, chain.factories, None) for kind in WHOLE_TOPIC_KINDS
        ]
        for target_line, service in _targets():
            if target_line is line:
                poisons += [
                    draw_poison(data.draw, line, kind, chain.factories, service)
                    for kind in TYPE_KINDS
                ]
        batches.append((line, poisons))
    await run_example(chain, batches)
