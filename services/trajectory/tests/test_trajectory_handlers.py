"""The trajectory's handlers decide against an in-memory unit of work: no servers. The
service's own dependencies are built around it, as its bootstrap builds them, and bound to
the handlers as the consumer binds them."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import pytest

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import (
    ConsentGranted,
    ConsentWithdrawn,
    PartnerContactSealed,
    TrajectoryOpened,
    WaitlistExited,
)
from ketenbus.contracts.events.intake import NOTIFICATIONS_CARD, partner_card
from ketenbus.contracts.topics import CONTACTS, contact_card_key
from ketenbus.contracts.values import ConsentGiver, ConsentPurpose, new_id
from ketenbus.kit.errors import AlreadyHandled
from ketenbus.kit.testing import InMemoryAggregates, InMemoryTransaction, InMemoryUnitOfWork
from ketenbus.trajectory.bootstrap import TrajectoryDependencies
from ketenbus.trajectory.domain import Trajectory
from ketenbus.trajectory.handlers import handlers
from ketenbus.trajectory.settings import TrajectorySettings

from .test_trajectory_domain import NOW, accepted


class Trajectories(InMemoryAggregates[Trajectory]):
    async def by_referral(self, referral_id: str) -> Trajectory | None:
        return self.first(lambda t: t.referral_id == referral_id)

    async def of_client(self, client_ref: str) -> list[Trajectory]:
        return self.where(lambda t: t.client_ref == client_ref)


class Consents:
    """The consents by id; the partners' cards by their key on the contacts topic, each
    holding the id of the consent it was sealed under."""

    def __init__(self, tx: InMemoryTransaction) -> None:
        self.consents = tx.table("consents")
        self.cards = tx.table("partner_cards")

    async def granted(self, consent_id: str, client_ref: str, partner: str, purpose: str) -> None:
        self.consents.setdefault(consent_id, {"withdrawn_at": None})["client_ref"] = client_ref

    async def withdrawn(self, consent_id: str, at: datetime) -> None:
        self.consents.setdefault(consent_id, {})["withdrawn_at"] = at

    async def was_withdrawn(self, consent_id: str) -> bool:
        return (self.consents.get(consent_id) or {}).get("withdrawn_at") is not None

    async def keep_card(self, key: str, card: PartnerContactSealed) -> None:
        self.cards[key] = card.consent_id

    async def forget_card(self, key: str) -> None:
        self.cards.pop(key, None)

    async def forget_cards_of_consent(self, consent_id: str) -> None:
        for key in [k for k, kept in self.cards.items() if kept == consent_id]:
            del self.cards[key]


class Tx(InMemoryTransaction):
    @cached_property
    def trajectories(self) -> Trajectories:
        return Trajectories(self, "trajectories")

    @cached_property
    def consents(self) -> Consents:
        return Consents(self)


def dependencies(uow: InMemoryUnitOfWork[Tx]) -> TrajectoryDependencies:
    return TrajectoryDependencies.from_settings(TrajectorySettings(), uow=uow, clock=uow.clock)


async def test_a_referral_announced_twice_opens_one_trajectory():
    uow = InMemoryUnitOfWork(Tx, service="trajectory")
    handle = handlers.bind(dependencies(uow))
    referral = accepted()
    first = wrap(referral, source="intake", time=NOW)
    await handle(first)
    assert uow.published_types() == [TrajectoryOpened]
    assert uow.published[0].causationid == first.id

    # The same referral out of the waiting list later, under another event id: no second one.
    exited = WaitlistExited(
        **referral.model_dump(exclude={"accepted_at"}), exited_at=NOW + timedelta(days=1)
    )
    await handle(wrap(exited, source="intake", time=NOW))
    assert len(uow.tables["trajectories"]) == 1
    assert uow.published_types() == [TrajectoryOpened]

    with pytest.raises(AlreadyHandled):
        await handle(first)


def test_partners_answers_are_read_on_the_inbound_topics_of_the_partners_deployed():
    settings = TrajectorySettings(partner_organisations="schuldhulp-utrecht,gemeente-utrecht")
    subscription = handlers.subscription(settings)
    inbound = {
        "ketenbus.partners.gemeente-utrecht.inbound.v1",
        "ketenbus.partners.schuldhulp-utrecht.inbound.v1",
    }
    assert subscription.closed == inbound
    assert "ketenbus.intake.referrals.v1" in subscription.topics
    assert inbound < set(subscription.topics)
    assert handlers.subscription(TrajectorySettings()).closed == frozenset()


# ------------------------------------------------------------------ the partner's card

CLIENT, DEBT = new_id("cl"), "schuldhulp-midden"
CARD_KEY = contact_card_key(CLIENT, partner_card(DEBT))


def card(consent_id: str) -> Any:
    contact = sealing.seal(
        b'{"name": "x"}', data_key=sealing.new_key(), key_id="k", recipient_key=sealing.new_key()
    )
    sealed = PartnerContactSealed(
        client_ref=CLIENT,
        organisation_id="welzijn-utrecht",
        partner_organisation_id=DEBT,
        consent_id=consent_id,
        purpose=ConsentPurpose.DEBT_COUNSELLING,
        contact=contact,
        sealed_at=NOW,
    )
    return wrap(sealed, source="intake", time=NOW)


def granted(consent_id: str) -> Any:
    return wrap(
        ConsentGranted(
            client_ref=CLIENT,
            organisation_id="welzijn-utrecht",
            consent_id=consent_id,
            partner_organisation_id=DEBT,
            purpose=ConsentPurpose.DEBT_COUNSELLING,
            given_by=ConsentGiver.CLIENT,
            granted_at=NOW,
        ),
        source="intake",
        time=NOW,
    )


def withdrawal(consent_id: str) -> Any:
    return wrap(
        ConsentWithdrawn(
            client_ref=CLIENT,
            organisation_id="welzijn-utrecht",
            consent_id=consent_id,
            partner_organisation_id=DEBT,
            purpose=ConsentPurpose.DEBT_COUNSELLING,
            withdrawn_at=NOW,
        ),
        source="intake",
        time=NOW,
    )


def test_the_partners_card_is_read_on_the_compacted_contacts_topic_with_its_tombstones():
    assert PartnerContactSealed.stream is CONTACTS
    assert card(new_id("cns")).data.key == CARD_KEY
    assert CONTACTS.name in handlers.subscription(TrajectorySettings()).topics
    assert CONTACTS.name in handlers.tombstones


async def test_a_card_before_its_consent_is_kept_and_its_tombstone_forgets_it():
    """The card travels on the contacts topic, the consent on the clients topic: either may
    come first. Nothing is handed off without the consent (for_hand_off asks for both)."""
    uow = InMemoryUnitOfWork(Tx, service="trajectory")
    deps = dependencies(uow)
    handle, forget = handlers.bind(deps), handlers.bind(deps).by_tombstone_topic[CONTACTS.name]
    consent_id = new_id("cns")
    await handle(card(consent_id))
    assert uow.tables["partner_cards"] == {CARD_KEY: consent_id}
    await handle(granted(consent_id))
    assert uow.tables["partner_cards"] == {CARD_KEY: consent_id}

    await forget(contact_card_key(CLIENT, NOTIFICATIONS_CARD))  # notifications' card
    assert CARD_KEY in uow.tables["partner_cards"]
    await forget(CARD_KEY)
    assert uow.tables["partner_cards"] == {}
    await forget(CARD_KEY)  # twice: harmless
    assert uow.tables["partner_cards"] == {}


async def test_a_withdrawal_drops_the_card_of_its_consent_and_a_late_card_of_it_is_not_kept():
    uow = InMemoryUnitOfWork(Tx, service="trajectory")
    handle = handlers.bind(dependencies(uow))
    first, second = new_id("cns"), new_id("cns")
    await handle(granted(first))
    await handle(card(first))
    await handle(withdrawal(first))
    assert uow.tables["partner_cards"] == {}

    # A card of the withdrawn consent that comes after the withdrawal is not kept, nor the
    # one it replaced on the topic.
    await handle(granted(second))
    await handle(card(second))
    await handle(card(first))
    assert uow.tables["partner_cards"] == {}
    # The card sealed again under the consent still in force replaces it; another
    # consent's withdrawal leaves it.
    await handle(card(second))
    await handle(withdrawal(new_id("cns")))
    assert uow.tables["partner_cards"] == {CARD_KEY: second}
