"""Analytics' projecting handler against an in-memory unit of work: no servers. The
handler is bound to the service's own dependencies, with the fake unit of work in them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ketenbus.analytics.bootstrap import AnalyticsDependencies
from ketenbus.analytics.gauges import BusinessGauges
from ketenbus.analytics.handlers import handlers
from ketenbus.analytics.settings import AnalyticsSettings
from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import ConsentWithdrawn
from ketenbus.contracts.values import ConsentPurpose, new_id
from ketenbus.kit.errors import AlreadyHandled
from ketenbus.kit.testing import InMemoryTransaction, InMemoryUnitOfWork


class Projection:
    """Gathers the events as the real one does; writes them into the tables when the unit of
    work ends (its `flush`), and fails there for one client."""

    def __init__(self, counts: dict[str, Any], clients: dict[str, Any]) -> None:
        self.counts, self.clients = counts, clients
        self.envelopes: list[Any] = []

    def add(self, envelope: Any) -> None:
        self.envelopes.append(envelope)

    async def flush(self) -> None:
        for envelope in self.envelopes:
            self.clients[envelope.data.client_ref] = envelope.data.purpose
            if envelope.data.client_ref == "cl_" + "0" * 32:
                raise RuntimeError("the projection failed")
            self.counts[envelope.type] = self.counts.get(envelope.type, 0) + 1


class Tx(InMemoryTransaction):
    @property
    def projection(self) -> Projection:
        return self.deferred(
            "facts", lambda: Projection(self.table("event_counts"), self.table("clients"))
        )


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
