"""Learning's enrolment handler decides against an in-memory unit of work: no servers. The
service's own dependencies are built around it, as its bootstrap builds them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property

import pytest

from ketenbus.contracts.envelope import Envelope, wrap
from ketenbus.contracts.events import ModuleAssigned
from ketenbus.contracts.values import Language, new_id
from ketenbus.kit.errors import DomainError
from ketenbus.kit.testing import InMemoryAggregates, InMemoryTransaction, InMemoryUnitOfWork
from ketenbus.learning.bootstrap import LearningDependencies
from ketenbus.learning.domain import Enrolment
from ketenbus.learning.handlers import handlers
from ketenbus.learning.settings import LearningSettings


class Tx(InMemoryTransaction):
    @cached_property
    def enrolments(self) -> InMemoryAggregates[Enrolment]:
        return InMemoryAggregates(self, "enrolments")


def assigned(module_id: str) -> Envelope[ModuleAssigned]:
    return wrap(
        ModuleAssigned(
            trajectory_id=new_id("trj"),
            client_ref=new_id("cl"),
            organisation_id="welzijn-utrecht",
            enrolment_id=new_id("enr"),
            module_id=module_id,
            language=Language.NL,
            assigned_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        ),
        source="trajectory",
    )


async def test_a_module_from_the_catalogue_enrols_and_an_unknown_one_is_refused():
    uow = InMemoryUnitOfWork(Tx, service="learning")
    handle = handlers.bind(
        LearningDependencies.from_settings(LearningSettings(), uow=uow, clock=uow.clock)
    )
    known = assigned("grip-op-je-geld")
    await handle(known)
    enrolment = uow.tables["enrolments"][known.data.enrolment_id]
    assert enrolment.module_id == "grip-op-je-geld"
    assert enrolment.client_ref == known.data.client_ref

    unknown = assigned("no-such-module")
    with pytest.raises(DomainError, match="no module no-such-module"):
        await handle(unknown)
    assert unknown.id not in uow.handled
    assert list(uow.tables["enrolments"]) == [known.data.enrolment_id]
