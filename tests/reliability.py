"""What the reliability tests share: the events each service consumes, made as their owners
would make them, and small helpers. Not a test module: the tests import it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from ketenbus.analytics.rebuild import ends_of
from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.contracts.events import (
    ClientWaitlisted,
    ConsentStatement,
    ModuleAssigned,
    ReferralAccepted,
    ReferralSubmitted,
    Urgency,
)
from ketenbus.contracts.topics import partner_inbound
from ketenbus.contracts.values import (
    ConsentGiver,
    ConsentPurpose,
    Language,
    ReferralTopic,
    ReferrerType,
    WorkType,
    new_id,
)
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.broker import partitions_of

SERVICES = ("intake", "trajectory", "notifications", "learning", "analytics")
GP = "huisarts-de-linde"
WELFARE = "welzijn-utrecht"
MODULE = "grip-op-je-geld"


def partner_referral(
    number: int, sharing_key: bytes, now: datetime, tag: str = "crash"
) -> Envelope[Any]:
    """A GP's referral on its inbound topic, the client sealed with the GP's key; a person of
    their own each (no phone or e-mail, so nothing is sent), in Utrecht."""
    reference = f"HDL-{tag}-{number:05d}"
    client = {
        "name": f"Cliënt Proef{number:05d}",
        "date_of_birth": (date(1950, 1, 1) + timedelta(days=number)).isoformat(),
        "postcode": "3522 BK",
        "language": "nl",
    }
    sealed = sealing.seal(
        json.dumps(client).encode(),
        data_key=sealing.new_key(),
        key_id=f"{GP}-{reference}",
        recipient_key=sharing_key,
    )
    event = ReferralSubmitted(
        partner_organisation_id=GP,
        referrer_type=ReferrerType.GP,
        referrer_reference=reference,
        topic=ReferralTopic.PSYCHOSOCIAL,
        urgency=Urgency(),
        consent=ConsentStatement(
            given_by=ConsentGiver.CLIENT,
            purposes=(ConsentPurpose.REFERRAL_FEEDBACK,),
            granted_at=now,
        ),
        client=sealed,
        submitted_at=now,
    )
    return wrap(event, source=GP)


def accepted_referral(now: datetime) -> Envelope[Any]:
    return wrap(
        ReferralAccepted(
            referral_id=new_id("ref"),
            client_ref=new_id("cl"),
            organisation_id=WELFARE,
            funder="Utrecht",
            work_type=WorkType.GENERAL,
            referrer_type=ReferrerType.GP,
            topic=ReferralTopic.PSYCHOSOCIAL,
            postcode_area="3522",
            crisis=False,
            consent_id=new_id("cns"),
            received_at=now,
            accepted_at=now,
        ),
        source="intake",
    )


def assigned_module(now: datetime) -> Envelope[Any]:
    # Assigned twelve days ago: the nudges (after 5 and 10 idle days) would already be past,
    # so notifications plans none; abandonment comes only after 21 days.
    return wrap(
        ModuleAssigned(
            trajectory_id=new_id("trj"),
            client_ref=new_id("cl"),
            organisation_id=WELFARE,
            enrolment_id=new_id("enr"),
            module_id=MODULE,
            language=Language.NL,
            assigned_at=now - timedelta(days=12),
        ),
        source="trajectory",
    )


def waitlisted_client(now: datetime, position: int) -> Envelope[Any]:
    return wrap(
        ClientWaitlisted(
            referral_id=new_id("ref"),
            client_ref=new_id("cl"),
            organisation_id=WELFARE,
            position=position,
            waitlisted_at=now,
        ),
        source="intake",
    )


def topic_of(envelope: Envelope[Any]) -> str:
    if isinstance(envelope.data, ReferralSubmitted):
        return partner_inbound(GP).name
    return envelope.data.destination().name


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float, every: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        await asyncio.sleep(every)


def invitations_in_two_weeks(directory: Path) -> Path:
    """The packaged reminder policy, but waitlist invitations two weeks after the waitlisting:
    planned (and counted) during the test, never due, so the dispatcher leaves them be."""
    policies = json.loads(
        resources.files("ketenbus.notifications").joinpath("data/policies.json").read_text()
    )
    policies["default"]["waitlist_invitation_delay"] = "P14D"
    path = directory / "policies.json"
    path.write_text(json.dumps(policies))
    return path


async def read_everything(kafka: KafkaAccess, topics: list[str]) -> list[Any]:
    """Every record on these topics, from the beginning to the end as it is now."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await ends_of(kafka.client_options(), partitions)
        records: list[Any] = []
        deadline = time.monotonic() + 60
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            assert time.monotonic() < deadline, "could not read the topics to their end"
            for batch in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def partitions_held(url: str) -> set[tuple[str, int]]:
    """The partitions a service process holds in its consumer group now: those it reports
    consumer lag for on /metrics (it drops a partition's figure when the partition goes)."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        text = (await http.get(f"{url}/metrics")).text
    return {
        (sample.labels["topic"], int(sample.labels["partition"]))
        for family in text_string_to_metric_families(text)
        if family.name == "ketenbus_consumer_lag"
        for sample in family.samples
    }


async def partition_counts(kafka: KafkaAccess, topics: dict[str, list[str]]) -> dict[str, int]:
    """For each name, how many partitions its topics have together."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        return {name: len(await partitions_of(consumer, read)) for name, read in topics.items()}
    finally:
        await consumer.stop()
