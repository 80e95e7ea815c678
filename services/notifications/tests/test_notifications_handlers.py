"""Notifications' consent handlers decide against an in-memory unit of work: no servers. The
service's own dependencies are built around it, as its bootstrap builds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from prometheus_client import CollectorRegistry

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import ConsentGranted, ConsentWithdrawn
from ketenbus.contracts.events.intake import NOTIFICATIONS_CARD
from ketenbus.contracts.topics import CONTACTS, contact_card_key
from ketenbus.contracts.values import ConsentGiver, ConsentPurpose
from ketenbus.kit.testing import InMemoryTransaction, InMemoryUnitOfWork
from ketenbus.notifications.bootstrap import NotificationDependencies
from ketenbus.notifications.handlers import handlers
from ketenbus.notifications.settings import NotificationSettings

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLIENT = "cl_" + "a" * 32


class ReminderConsents:
    def __init__(self, rows: dict[str, Any]) -> None:
        self.rows = rows

    async def grant(self, client_ref: str, consent_id: str, at: datetime) -> None:
        self.rows.setdefault(client_ref, set()).add(consent_id)

    async def withdraw(self, client_ref: str, consent_id: str, at: datetime) -> bool:
        self.rows.setdefault(client_ref, set()).discard(consent_id)
        return not self.rows[client_ref]


class Contacts:
    def __init__(self, rows: dict[str, Any]) -> None:
        self.rows = rows

    async def forget(self, client_ref: str, shared_until: datetime | None = None) -> None:
        card = self.rows.get(client_ref)
        if card is not None and (shared_until is None or card["shared_at"] <= shared_until):
            del self.rows[client_ref]


class Reminders:
    async def of_client(self, client_ref: str) -> list[Any]:
        return []

    async def save_all(self, reminders: list[Any]) -> None:
        assert reminders == []


class Tx(InMemoryTransaction):
    @cached_property
    def reminder_consents(self) -> ReminderConsents:
        return ReminderConsents(self.table("reminder_consents"))

    @cached_property
    def contacts(self) -> Contacts:
        return Contacts(self.table("contacts"))

    @cached_property
    def reminders(self) -> Reminders:
        return Reminders()


def consent(consent_id: str, purpose: ConsentPurpose = ConsentPurpose.REMINDERS) -> Any:
    return wrap(
        ConsentGranted(
            consent_id=consent_id,
            client_ref=CLIENT,
            organisation_id="welzijn-utrecht",
            given_by=ConsentGiver.CLIENT,
            partner_organisation_id="welzijn-utrecht",
            purpose=purpose,
            granted_at=AT,
        ),
        source="intake",
    )


def card(shared_at: datetime = AT) -> dict[str, Any]:
    return {"sealed": "sealed card", "shared_at": shared_at}


def withdrawal(consent_id: str) -> Any:
    return wrap(
        ConsentWithdrawn(
            consent_id=consent_id,
            client_ref=CLIENT,
            organisation_id="welzijn-utrecht",
            partner_organisation_id="welzijn-utrecht",
            purpose=ConsentPurpose.REMINDERS,
            withdrawn_at=AT,
        ),
        source="intake",
    )


def dependencies(uow: InMemoryUnitOfWork[Tx]) -> NotificationDependencies:
    settings = NotificationSettings(contact_sharing_key=sealing.key_to_text(sealing.new_key()))
    return NotificationDependencies.from_settings(
        settings, uow=uow, clock=uow.clock, registry=CollectorRegistry()
    )


async def test_the_contact_card_goes_only_with_the_last_consent_to_reminders():
    uow = InMemoryUnitOfWork(Tx, service="notifications")
    handle = handlers.bind(dependencies(uow))
    uow.tables["contacts"] = {CLIENT: card()}
    await handle(consent("cns_" + "1" * 32))
    await handle(consent("cns_" + "2" * 32))
    # Consent to another purpose is another service's business: not even claimed here.
    other = consent("cns_" + "3" * 32, ConsentPurpose.DEBT_COUNSELLING)
    await handle(other)
    assert other.id not in uow.handled
    assert uow.tables["reminder_consents"] == {CLIENT: {"cns_" + "1" * 32, "cns_" + "2" * 32}}

    await handle(withdrawal("cns_" + "1" * 32))
    assert CLIENT in uow.tables["contacts"]
    await handle(withdrawal("cns_" + "2" * 32))
    assert CLIENT not in uow.tables["contacts"]


async def test_a_card_shared_after_the_withdrawal_came_with_a_later_consent_and_stays():
    """The card travels on the contacts topic, the consents on the clients topic: a card of a
    consent given again may arrive before the withdrawal of the one before it."""
    uow = InMemoryUnitOfWork(Tx, service="notifications")
    handle = handlers.bind(dependencies(uow))
    uow.tables["contacts"] = {CLIENT: card(shared_at=AT + timedelta(minutes=5))}
    await handle(consent("cns_" + "1" * 32))
    await handle(withdrawal("cns_" + "1" * 32))
    assert CLIENT in uow.tables["contacts"]


async def test_the_tombstone_of_notifications_card_forgets_it_and_no_other_recipients_key():
    uow = InMemoryUnitOfWork(Tx, service="notifications")
    deps = dependencies(uow)
    forget = handlers.bind(deps).by_tombstone_topic[CONTACTS.name]
    uow.tables["contacts"] = {CLIENT: card()}
    await forget(contact_card_key(CLIENT, "some-partner"))
    assert CLIENT in uow.tables["contacts"]
    await forget(contact_card_key(CLIENT, NOTIFICATIONS_CARD))
    assert CLIENT not in uow.tables["contacts"]
    await forget(contact_card_key(CLIENT, NOTIFICATIONS_CARD))  # twice: harmless
    assert uow.handled == set()  # a tombstone has no id: nothing claimed in the inbox
