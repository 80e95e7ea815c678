"""Partner simulators: a GP practice and a debt-counselling organisation, as a partner would
build them, on the contracts package, aiokafka and httpx alone (no Ketenbus internals).

    gp = GpPractice("huisarts-de-linde", kafka, intake_url=..., api_key=..., sharing_key=...)
    await gp.start()
    referral = await gp.refer(body)                 # HTTP front door
    await gp.refer_on_kafka("HDL-1", client, ...)   # or on its inbound topic, client sealed
    statuses = await gp.wait_for_statuses(referral["referral_id"], ["received", "accepted"])

    debt = DebtCounsellingPartner("schuldhulp-midden", kafka, sharing_key=...)
    await debt.start()                              # answers every hand-off request: accepted
    hand_off = await debt.next_request()
    await debt.report(hand_off.id, PartnerStatus.ARRANGEMENT_RUNNING)
    await debt.complete(hand_off.id, PartnerOutcome.ARRANGEMENT_COMPLETED)

Each reads its outbound topic from the beginning by assignment (no consumer group to join)
and writes to its inbound topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ketenbus.contracts import sealing
from ketenbus.contracts.access import partner_user
from ketenbus.contracts.envelope import Envelope, Event, UndeliverableEvent, decode, wrap
from ketenbus.contracts.events import (
    REGISTRY,
    ConsentStatement,
    PartnerCompleted,
    PartnerOutcome,
    PartnerReferralAccepted,
    PartnerReferralDeclined,
    PartnerReferralRequested,
    PartnerReferralWithdrawn,
    PartnerStatus,
    PartnerStatusChanged,
    ReferralRejected,
    ReferralStatusChanged,
    ReferralSubmitted,
    Urgency,
)
from ketenbus.contracts.topics import partner_inbound, partner_outbound
from ketenbus.contracts.values import ConsentGiver, ConsentPurpose, ReferralTopic, ReferrerType
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.kit.broker import fresh_partitions


class PartnerTimeout(Exception):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class PartnerLine:
    """A partner's two topics: it writes to its inbound topic and reads its outbound topic."""

    def __init__(self, organisation_id: str, kafka: KafkaAccess) -> None:
        self.organisation_id = organisation_id
        self.kafka = kafka
        self.inbound = partner_inbound(organisation_id).name
        self.outbound = partner_outbound(organisation_id).name
        self.received: list[Envelope[Any]] = []
        self.unreadable: list[bytes] = []
        self.failures: list[str] = []
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        # As the partner's own Kafka user, whose ACLs allow just these two topics.
        connection = self.kafka.client_options(partner_user(self.organisation_id))
        self._producer = AIOKafkaProducer(**connection, enable_idempotence=True, acks="all")
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(**connection, group_id=None, enable_auto_commit=False)
        await self._consumer.start()
        partitions = await self._wait_for_partitions()
        assigned = [TopicPartition(self.outbound, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)
        self._reader = asyncio.create_task(self._read(), name=f"{self.organisation_id}-outbound")

    async def _wait_for_partitions(self) -> set[int]:
        assert self._consumer is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            partitions = (await fresh_partitions(self._consumer)).get(self.outbound)
            if partitions:
                return partitions
            await asyncio.sleep(0.2)
        raise PartnerTimeout(f"topic {self.outbound} does not exist")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def __aenter__(self) -> PartnerLine:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    try:
                        envelope = decode(record.value, REGISTRY, record.headers)
                    except UndeliverableEvent:
                        self.unreadable.append(record.value)
                        continue
                    self.received.append(envelope)
                    try:
                        await self.on_message(envelope)
                    except Exception as error:  # a simulator keeps reading, and says why
                        self.failures.append(f"{envelope.type}: {type(error).__name__}: {error}")
            if batch:
                self._arrived.set()

    async def on_message(self, envelope: Envelope[Any]) -> None:
        """What the partner does with a message from the chain (subclasses answer)."""

    async def send(self, event: Event) -> Envelope[Any]:
        envelope = wrap(event, source=self.organisation_id)
        await self.send_raw(envelope.to_bytes(), key=envelope.subject)
        return envelope

    async def send_raw(self, value: bytes, key: str = "raw") -> None:
        """Anything at all on the inbound topic, e.g. a malformed message in a test."""
        assert self._producer is not None, "start() the partner first"
        await self._producer.send_and_wait(self.inbound, value, key=key.encode())

    async def wait_for(
        self, condition: Callable[[list[Envelope[Any]]], Any], what: str, timeout: float = 30.0
    ) -> Any:
        """Wait until `condition(received)` is truthy; returns what it returned."""
        deadline = time.monotonic() + timeout
        while True:
            found = condition(self.received)
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PartnerTimeout(
                    f"{self.organisation_id}: timed out after {timeout:.0f}s waiting for {what}"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.5))


class GpPractice(PartnerLine):
    """A GP practice: refers over HTTP or on its topic, and hears back where referrals stand."""

    def __init__(
        self,
        organisation_id: str,
        kafka: KafkaAccess,
        *,
        intake_url: str = "",
        api_key: str = "",
        sharing_key: bytes | None = None,
    ) -> None:
        super().__init__(organisation_id, kafka)
        self.intake_url = intake_url
        self.api_key = api_key
        self.sharing_key = sharing_key

    async def refer(
        self, referral: dict[str, Any], idempotency_key: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        async with httpx.AsyncClient(timeout=10.0) as http:
            return await http.post(
                f"{self.intake_url}/v1/referrals", json=referral, headers=headers
            )

    async def status(self, referral_id: str, api_key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {api_key or self.api_key}"}
        async with httpx.AsyncClient(timeout=10.0) as http:
            return await http.get(
                f"{self.intake_url}/v1/referrals/{referral_id}/status", headers=headers
            )

    async def refer_on_kafka(
        self,
        reference: str,
        client: dict[str, Any],
        *,
        topic: ReferralTopic = ReferralTopic.PSYCHOSOCIAL,
        urgency: Urgency | None = None,
        purposes: Iterable[ConsentPurpose] = (ConsentPurpose.REFERRAL_FEEDBACK,),
        sharing_key: bytes | None = None,
    ) -> Envelope[Any]:
        """The same referral as over HTTP, on the inbound topic, the client sealed with the
        key this practice shares with intake."""
        key = sharing_key or self.sharing_key
        assert key is not None, "a Kafka referral needs the key shared with intake"
        sealed = sealing.seal(
            json.dumps(client).encode(),
            data_key=sealing.new_key(),
            key_id=f"{self.organisation_id}-{reference}"[:64],
            recipient_key=key,
        )
        return await self.send(
            ReferralSubmitted(
                partner_organisation_id=self.organisation_id,
                referrer_type=ReferrerType.GP,
                referrer_reference=reference,
                topic=topic,
                urgency=urgency or Urgency(),
                consent=ConsentStatement(
                    given_by=ConsentGiver.CLIENT, purposes=tuple(purposes), granted_at=_now()
                ),
                client=sealed,
                submitted_at=_now(),
            )
        )

    def statuses(self, referral_id: str) -> list[str]:
        """The closed loop of one referral as heard so far, in order."""
        return [
            e.data.status.value
            for e in self.received
            if isinstance(e.data, ReferralStatusChanged) and e.data.referral_id == referral_id
        ]

    async def wait_for_statuses(
        self, referral_id: str, expected: list[str], timeout: float = 30.0
    ) -> list[str]:
        def arrived(_: list[Envelope[Any]]) -> list[str] | None:
            heard = self.statuses(referral_id)
            return heard if len(heard) >= len(expected) else None

        return await self.wait_for(arrived, f"statuses {expected} of {referral_id}", timeout)

    async def wait_for_rejection(
        self, reference: str | None = None, timeout: float = 30.0
    ) -> ReferralRejected:
        def rejected(received: list[Envelope[Any]]) -> ReferralRejected | None:
            return next(
                (
                    e.data
                    for e in received
                    if isinstance(e.data, ReferralRejected)
                    and (reference is None or e.data.referrer_reference == reference)
                ),
                None,
            )

        return await self.wait_for(rejected, f"a rejection of {reference}", timeout)


@dataclass
class HandOff:
    """A hand-off as the debt-counselling partner holds it: the request and the contact."""

    id: str
    request: PartnerReferralRequested
    contact: dict[str, Any] | None
    answers: list[str] = field(default_factory=list)
    withdrawn: bool = False


class DebtCounsellingPartner(PartnerLine):
    """Takes hand-off requests from its outbound topic, opens the contact with its key, and
    answers on its inbound topic: accepted at once (unless told not to), then as told."""

    def __init__(
        self,
        organisation_id: str,
        kafka: KafkaAccess,
        *,
        sharing_key: bytes,
        accept: bool = True,
        now: Callable[[], datetime] = _now,
    ) -> None:
        """`now`: the partner's clock (a simulated year gives its own)."""
        super().__init__(organisation_id, kafka)
        self.sharing_key = sharing_key
        self.accept = accept
        self.now = now
        self.hand_offs: dict[str, HandOff] = {}

    async def on_message(self, envelope: Envelope[Any]) -> None:
        message = envelope.data
        if isinstance(message, PartnerReferralRequested):
            if message.partner_referral_id in self.hand_offs:
                return  # delivered again: answered already
            try:
                contact = json.loads(sealing.open_sealed(message.client_contact, self.sharing_key))
            except sealing.SealBroken:
                contact = None
            hand_off = HandOff(message.partner_referral_id, message, contact)
            self.hand_offs[hand_off.id] = hand_off
            if self.accept and contact is not None:
                await self._answer(
                    hand_off,
                    PartnerReferralAccepted(
                        partner_organisation_id=self.organisation_id,
                        partner_referral_id=hand_off.id,
                        accepted_at=self.now(),
                    ),
                )
        elif isinstance(message, PartnerReferralWithdrawn):
            withdrawn = self.hand_offs.get(message.partner_referral_id)
            if withdrawn is not None:
                # Stop, and forget how to reach the client.
                withdrawn.withdrawn, withdrawn.contact = True, None

    async def _answer(self, hand_off: HandOff, answer: Event) -> None:
        await self.send(answer)
        hand_off.answers.append(answer.name)

    async def next_request(self, timeout: float = 30.0) -> HandOff:
        """The oldest hand-off not yet finished."""

        def waiting(_: list[Envelope[Any]]) -> HandOff | None:
            return next(
                (h for h in self.hand_offs.values() if "PartnerCompleted" not in h.answers),
                None,
            )

        return await self.wait_for(waiting, "a hand-off request", timeout)

    async def request(self, partner_referral_id: str, timeout: float = 30.0) -> HandOff:
        """This hand-off, once its request has arrived."""
        return await self.wait_for(
            lambda _: self.hand_offs.get(partner_referral_id), partner_referral_id, timeout
        )

    async def accept_request(self, partner_referral_id: str) -> None:
        await self._answer(
            self.hand_offs[partner_referral_id],
            PartnerReferralAccepted(
                partner_organisation_id=self.organisation_id,
                partner_referral_id=partner_referral_id,
                accepted_at=self.now(),
            ),
        )

    async def decline(self, partner_referral_id: str, reason: str) -> None:
        await self._answer(
            self.hand_offs[partner_referral_id],
            PartnerReferralDeclined(
                partner_organisation_id=self.organisation_id,
                partner_referral_id=partner_referral_id,
                reason=reason,
                declined_at=self.now(),
            ),
        )

    async def report(self, partner_referral_id: str, status: PartnerStatus) -> None:
        await self._answer(
            self.hand_offs[partner_referral_id],
            PartnerStatusChanged(
                partner_organisation_id=self.organisation_id,
                partner_referral_id=partner_referral_id,
                status=status,
                changed_at=self.now(),
            ),
        )

    async def complete(self, partner_referral_id: str, outcome: PartnerOutcome) -> None:
        await self._answer(
            self.hand_offs[partner_referral_id],
            PartnerCompleted(
                partner_organisation_id=self.organisation_id,
                partner_referral_id=partner_referral_id,
                outcome=outcome,
                completed_at=self.now(),
            ),
        )
