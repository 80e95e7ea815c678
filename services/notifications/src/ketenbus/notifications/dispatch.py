"""Sends reminders when they fall due. The store, not a timer, is the source of truth.

Each reminder goes through four short steps, each its own transaction:

1. settle: a reminder whose last hand-over may have reached the provider is looked up there
   first (found: it was sent; the channel cannot tell: it counts as sent, never resent);
2. claim: the domain decides (send now, on which channel; defer for quiet hours or the daily
   cap; cancel; fail) and a send is claimed with a lease, so no other dispatcher takes it;
3. hand over: the reminder is marked as possibly with the provider, then sent with the
   reminder id as the provider's idempotency key and the mail's Message-ID;
4. record: the outcome (sent; retry later with backoff; this channel failed for good).

A crash between 3 and 4 leaves a reminder in "sending" with `handed_over`: after its lease
it is settled by step 1, never sent again blindly.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ketenbus.contracts.events import WorkerNote
from ketenbus.contracts.values import Channel, Language, Sealed
from ketenbus.kit.clock import Clock
from ketenbus.kit.failures import is_transient
from ketenbus.kit.logs import get_logger
from ketenbus.kit.uow import UnitOfWork
from ketenbus.notifications import messages, opt_out_links
from ketenbus.notifications.channels import Adapter, Parcel
from ketenbus.notifications.contact import ContactCard, open_card
from ketenbus.notifications.domain import (
    Audience,
    Lookup,
    Reach,
    Reminder,
    ReminderStatus,
    SendingRules,
)
from ketenbus.notifications.handlers import tell_worker
from ketenbus.notifications.policies import OrganisationPolicy, Policies
from ketenbus.notifications.store import NotificationTransaction
from ketenbus.notifications.timing import local_day

log = get_logger(__name__)

BATCH = 20


@dataclass
class Claimed:
    reminder: Reminder
    channel: Channel
    parcel: Parcel


class Dispatcher:
    def __init__(
        self,
        *,
        uow: UnitOfWork[NotificationTransaction],
        clock: Clock,
        adapters: dict[Channel, Adapter],
        policies: Policies,
        rules: SendingRules,
        contact_key: bytes,
        link_key: bytes,
        public_url: str,
    ) -> None:
        self.uow, self.clock, self.adapters = uow, clock, adapters
        self.policies, self.rules = policies, rules
        self.contact_key, self.link_key = contact_key, link_key
        self.public_url = public_url.rstrip("/")
        # Unique per process start: a claim names the dispatcher that holds it.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def run(self, poll_seconds: float) -> None:
        while True:
            if await self.run_once():
                continue
            await asyncio.sleep(await self._pause(poll_seconds))

    async def _pause(self, poll_seconds: float) -> float:
        """Until the next reminder falls due, if that is sooner than the next poll."""
        now = self.clock.now()
        horizon = now + self.clock.simulated(poll_seconds)
        async with self.uow.reading() as tx:
            upcoming = await tx.reminders.next_send_at(before=horizon)
        if upcoming is None:
            return poll_seconds
        return min(poll_seconds, self.clock.real_seconds(upcoming - now))

    async def run_once(self) -> int:
        async with self.uow.reading() as tx:
            ids = await tx.reminders.claimable_ids(self.clock.now(), _real_now(), BATCH)
        for reminder_id in ids:
            try:
                await self.deliver(reminder_id)
            except Exception as error:
                if not is_transient(error):
                    raise
                # A write conflict (another replica) or the database away: next round.
                log.warning(
                    "reminder not delivered this round",
                    reminder_id=reminder_id,
                    error=type(error).__name__,
                )
        return len(ids)

    async def deliver(self, reminder_id: str) -> None:
        lookup = await self._look_up_earlier_hand_over(reminder_id)
        claimed = await self._claim(reminder_id, lookup)
        if claimed is None:
            return
        if not await self._hand_over(reminder_id):
            return
        adapter = self.adapters[claimed.channel]
        outcome = await adapter.send(claimed.parcel)
        async with self.uow.command() as tx:
            reminder = await tx.reminders.get(reminder_id)
            if reminder is None or not self._holds(reminder):
                # Our lease ran out and another dispatcher settled it: it knows better.
                log.warning("claim lost before recording", reminder_id=reminder_id)
                return
            reminder.record(outcome, now=tx.clock.now(), real_now=_real_now(), rules=self.rules)
            await tx.reminders.save(reminder)
        log.info(
            "reminder delivery attempted",
            reminder_id=reminder_id,
            channel=claimed.channel.value,
            status=reminder.status.value,
            attempt=reminder.attempts,
        )

    # ------------------------------------------------------------------ the steps

    async def _look_up_earlier_hand_over(
        self, reminder_id: str
    ) -> tuple[Lookup, str | None] | None:
        async with self.uow.reading() as tx:
            reminder = await tx.reminders.get(reminder_id)
        if reminder is None or not reminder.handed_over or reminder.channel is None:
            return None
        adapter = self.adapters.get(reminder.channel)
        if adapter is None:
            return Lookup.UNKNOWN, None
        found = await adapter.lookup(reminder.id)
        log.info("earlier hand-over looked up", reminder_id=reminder_id, outcome=found[0].value)
        return found

    async def _claim(
        self, reminder_id: str, lookup: tuple[Lookup, str | None] | None
    ) -> Claimed | None:
        async with self.uow.command() as tx:
            now, real_now = tx.clock.now(), _real_now()
            reminder = await tx.reminders.get(reminder_id)
            if reminder is None or not reminder.claimable(now, real_now):
                return None
            if reminder.handed_over:
                if lookup is None:
                    return None  # handed over since we looked: the next round settles it
                reminder.resolve(lookup[0], now=now, provider_id=lookup[1])
                if reminder.status is ReminderStatus.SENT:
                    await tx.reminders.save(reminder)
                    return None
            policy = self.policies.of(reminder.organisation_id)
            reach, card = await self._reach(tx, reminder, policy, now)
            counted_before = reminder.counted_day
            channel = reminder.claim(
                now=now,
                real_now=real_now,
                reach=reach,
                policy=policy,
                rules=self.rules,
                owner=self.owner,
            )
            if reminder.counted_day and counted_before is None:
                await tx.daily_sends.add_one(reminder.client_ref, reminder.counted_day)
            if reminder.status is ReminderStatus.FAILED and reminder.audience is Audience.CLIENT:
                await tell_worker(tx, WorkerNote.REMINDER_FAILED, reminder, self.policies, now)
            await tx.reminders.save(reminder)
        if channel is None:
            return None
        parcel = self._parcel(reminder, card, reach.language, channel, policy, now)
        return Claimed(reminder, channel, parcel)

    async def _hand_over(self, reminder_id: str) -> bool:
        async with self.uow.command() as tx:
            reminder = await tx.reminders.get(reminder_id)
            if reminder is None or not self._holds(reminder):
                return False
            reminder.hand_over()
            await tx.reminders.save(reminder)
        return True

    def _holds(self, reminder: Reminder) -> bool:
        return reminder.status is ReminderStatus.SENDING and reminder.claimed_by == self.owner

    # ------------------------------------------------------------------ the recipient

    async def _reach(
        self,
        tx: NotificationTransaction,
        reminder: Reminder,
        policy: OrganisationPolicy,
        now: datetime,
    ) -> tuple[Reach, ContactCard | None]:
        if reminder.audience is Audience.WORKER:
            mailbox = policy.worker_mailbox
            card = ContactCard(name="", phone=None, email=mailbox) if mailbox else None
            reach = Reach(
                known=card is not None,
                channels=frozenset({Channel.EMAIL}) if card else frozenset(),
                preferred=Channel.EMAIL,
                language=Language(policy.worker_language),
            )
            return reach, card
        consent = await tx.reminder_consents.state(reminder.client_ref)
        contact = await tx.contacts.find(reminder.client_ref)
        if contact is None:
            return Reach(known=False, consent=consent), None
        card = open_card(_sealed(contact), self.contact_key)
        if card is None:
            return Reach(known=True, forgotten=True, consent=consent), None
        day = local_day(now, policy.zone).isoformat()
        reach = Reach(
            known=True,
            channels=frozenset(card.channels() & self.adapters.keys()),
            preferred=Channel(contact["preferred_channel"]),
            language=Language(contact["language"]),
            opted_out=await tx.opt_outs.of(reminder.client_ref),
            consent=consent,
            sent_today=await tx.daily_sends.count(reminder.client_ref, day),
        )
        return reach, card

    def _parcel(
        self,
        reminder: Reminder,
        card: ContactCard | None,
        language: Language,
        channel: Channel,
        policy: OrganisationPolicy,
        now: datetime,
    ) -> Parcel:
        assert card is not None
        address = card.address(channel)
        assert address is not None
        if reminder.audience is Audience.WORKER:
            return Parcel(address, messages.for_team(reminder, policy), reminder.id, now)
        opt_out = self.opt_out_url(reminder.client_ref, channel)
        message = messages.for_client(reminder, card, language, channel, policy, opt_out)
        return Parcel(
            address,
            message,
            reminder.id,
            now,
            unsubscribe_url=opt_out if channel is Channel.EMAIL else None,
            originator=policy.sms_originator,
        )

    def opt_out_url(self, client_ref: str, channel: Channel) -> str:
        token = opt_out_links.token(self.link_key, client_ref, channel)
        return f"{self.public_url}/v1/opt-out/{token}"


def _sealed(contact: dict[str, Any]) -> Sealed:
    return Sealed.model_validate(contact["sealed"])


def _real_now() -> datetime:
    return datetime.now(UTC)
