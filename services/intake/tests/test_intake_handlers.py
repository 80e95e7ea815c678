"""Intake's handlers decide against an in-memory unit of work: no servers. The service's own
dependencies are built around it, as its bootstrap builds them."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from ketenbus.contracts import sealing
from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import FirstContactMade, ReferralStatusChanged
from ketenbus.contracts.values import new_id
from ketenbus.intake import reception
from ketenbus.intake.bootstrap import IntakeDependencies, intake_keys
from ketenbus.intake.domain import NotFound, Organisation, Referral, ReferralState, triage
from ketenbus.intake.handlers import handlers
from ketenbus.intake.settings import IntakeSettings
from ketenbus.kit.consumer import BoundHandlers
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


class NoPlaces:
    """The places live in the database, outside any transaction; these handlers take none."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a place was asked for ({name}) where none should be")


def handling(uow: InMemoryUnitOfWork[Tx]) -> BoundHandlers:
    key = sealing.key_to_text
    settings = IntakeSettings(
        ketenbus_master_key=key(sealing.new_key()),
        contact_sharing_key=key(sealing.new_key()),
        pseudonym_key=key(sealing.new_key()),
    )
    deps = IntakeDependencies.from_settings(
        settings, uow=uow, clock=uow.clock, keys=intake_keys(settings), caseloads=NoPlaces()
    )
    return handlers.bind(deps)


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

    await handling(uow)(wrap(first_contact(original.id), source="trajectory"))

    rows = uow.tables["referrals"]
    assert rows[original.id].first_contact_at == rows[duplicate.id].first_contact_at
    assert rows[original.id].first_contact_at == NOW + timedelta(days=3)
    assert [e.data.referral_id for e in uow.published] == [original.id, duplicate.id]
    assert all(isinstance(e.data, ReferralStatusChanged) for e in uow.published)


async def test_first_contact_for_a_referral_intake_never_had_is_refused():
    uow = InMemoryUnitOfWork(Tx, service="intake")
    unknown = wrap(first_contact(new_id("ref")), source="trajectory")
    with pytest.raises(NotFound):
        await handling(uow)(unknown)
    assert unknown.id not in uow.handled and uow.published == []


def test_partners_refer_on_the_inbound_topics_of_the_partners_deployed():
    key = sealing.key_to_text(sealing.new_key())
    settings = IntakeSettings(
        ketenbus_master_key=key,
        contact_sharing_key=key,
        pseudonym_key=key,
        partner_organisations="gemeente-utrecht",
    )
    subscription = handlers.subscription(settings)
    assert subscription.closed == {"ketenbus.partners.gemeente-utrecht.inbound.v1"}
    assert "ketenbus.trajectory.trajectories.v1" in subscription.topics


class OnePlaceHeld:
    """The caseloads as `claimed_for` sees them: one place held by one referral."""

    def __init__(self, holder: str) -> None:
        self.holders = {"welzijn-amersfoort": holder}

    async def release_unless_accepted(self, referral_id: str) -> list[str]:
        freed = [o for o, holder in self.holders.items() if holder == referral_id]
        for organisation_id in freed:
            del self.holders[organisation_id]
        return freed


async def test_a_place_given_back_after_a_failed_command_rechecks_that_waiting_list():
    places = OnePlaceHeld("ref_lost")
    rechecked: list[str] = []

    async def recheck(organisation_id: str) -> None:
        rechecked.append(organisation_id)

    with pytest.raises(DuplicateKeyError):
        async with reception.claimed_for(places, "ref_lost", recheck):  # type: ignore[arg-type]
            raise DuplicateKeyError("the other replica made it under this Idempotency-Key")
    assert places.holders == {} and rechecked == ["welzijn-amersfoort"]

    # A command that fails without having claimed anything gives nothing back.
    with pytest.raises(RuntimeError):
        async with reception.claimed_for(places, "ref_other", recheck):  # type: ignore[arg-type]
            raise RuntimeError("refused")
    assert rechecked == ["welzijn-amersfoort"]
