"""Intake's handlers decide against an in-memory unit of work: no servers."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property

import pytest

from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import FirstContactMade, ReferralStatusChanged
from ketenbus.contracts.values import new_id
from ketenbus.intake.domain import NotFound, Organisation, Referral, ReferralState, triage
from ketenbus.intake.handlers import tell_first_contact
from ketenbus.kit.testing import InMemoryAggregates, InMemoryTransaction, InMemoryUnitOfWork

from .test_intake_domain import NOW, received


class Referrals(InMemoryAggregates[Referral]):
    async def linked_to(self, referral_id: str) -> list[Referral]:
        return self.where(
            lambda r: r.duplicate_of == referral_id and r.state is ReferralState.LINKED
        )


class Tx(InMemoryTransaction):
    @cached_property
    def referrals(self) -> Referrals:
        return Referrals(self, "referrals")


def first_contact(referral_id: str) -> FirstContactMade:
    return FirstContactMade(
        trajectory_id=new_id("trj"),
        client_ref=new_id("cl"),
        organisation_id="welzijn-utrecht",
        referral_id=referral_id,
        occurred_at=NOW + timedelta(days=3),
    )


async def test_first_contact_reaches_the_referral_and_the_duplicates_linked_to_it():
    original = received()
    triage(original, Organisation("welzijn-utrecht", capacity=5), position=1, at=NOW)
    duplicate = received(duplicate_of=original.id, referrer="huisarts-oosterpoort")
    duplicate.link_to(original, NOW + timedelta(days=1))
    uow = InMemoryUnitOfWork(Tx, service="intake")
    for referral in (original, duplicate):
        referral.events.clear()
        uow.tables.setdefault("referrals", {})[referral.id] = referral

    await tell_first_contact(wrap(first_contact(original.id), source="trajectory"), uow=uow)

    rows = uow.tables["referrals"]
    assert rows[original.id].first_contact_at == rows[duplicate.id].first_contact_at
    assert rows[original.id].first_contact_at == NOW + timedelta(days=3)
    assert [e.data.referral_id for e in uow.published] == [original.id, duplicate.id]
    assert all(isinstance(e.data, ReferralStatusChanged) for e in uow.published)


async def test_first_contact_for_a_referral_intake_never_had_is_refused():
    uow = InMemoryUnitOfWork(Tx, service="intake")
    unknown = wrap(first_contact(new_id("ref")), source="trajectory")
    with pytest.raises(NotFound):
        await tell_first_contact(unknown, uow=uow)
    assert unknown.id not in uow.handled and uow.published == []
