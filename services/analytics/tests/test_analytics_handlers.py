"""Analytics' projecting handler against an in-memory unit of work: no servers. The
handler is bound to the service's own dependencies, with the fake unit of work in them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import pytest

from ketenbus.analytics.bootstrap import AnalyticsDependencies
from ketenbus.analytics.gauges import BusinessGauges
from ketenbus.analytics.handlers import handlers
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.contracts.envelope import Event, wrap
from ketenbus.contracts.events import ConsentWithdrawn
from ketenbus.contracts.values import ConsentPurpose, new_id
from ketenbus.kit.errors import AlreadyHandled
from ketenbus.kit.testing import InMemoryTransaction, InMemoryUnitOfWork


class Facts:
    def __init__(self, counts: dict[str, Any], clients: dict[str, Any]) -> None:
        self.counts, self.clients = counts, clients

    async def project(self, event: Event) -> None:
        self.clients[event.client_ref] = event.purpose  # type: ignore[attr-defined]
        if event.client_ref == "cl_" + "0" * 32:  # type: ignore[attr-defined]
            raise RuntimeError("the projection failed")

    async def count(self, event_type: str) -> None:
        self.counts[event_type] = self.counts.get(event_type, 0) + 1


class Tx(InMemoryTransaction):
    @cached_property
    def facts(self) -> Facts:
        return Facts(self.table("event_counts"), self.table("clients"))


def withdrawn(client_ref: str | None = None) -> Any:
    return wrap(
        ConsentWithdrawn(
            consent_id=new_id("cns"),
            client_ref=client_ref or new_id("cl"),
            organisation_id="welzijn-utrecht",
            partner_organisation_id="welzijn-utrecht",
            purpose=ConsentPurpose.REMINDERS,
            withdrawn_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        ),
        source="intake",
    )


async def test_each_event_is_counted_once_and_a_failed_projection_counts_nothing():
    uow = InMemoryUnitOfWork(Tx, service="analytics")
    seen: dict[str, int] = {}
    deps = AnalyticsDependencies(
        settings=AnalyticsSettings(), clock=uow.clock, uow=uow, seen=seen, gauges=BusinessGauges()
    )
    project = handlers.bind(deps)
    first, second = withdrawn(), withdrawn()
    await project(first)
    await project(second)
    with pytest.raises(AlreadyHandled):
        await project(first)
    with pytest.raises(RuntimeError):
        await project(withdrawn("cl_" + "0" * 32))

    assert uow.tables["event_counts"] == {first.type: 2}
    assert seen == {first.type: 2}
    # What the failed projection wrote was undone with its transaction.
    assert set(uow.tables["clients"]) == {first.data.client_ref, second.data.client_ref}
