"""Trajectory's unit of work on the real database (SecantusDB), for the store's tests and
those that count its round trips: a database of its own per test, dropped after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ketenbus.kit.clock import FixedClock
from ketenbus.kit.sent_commands import SentCommands, watched_database
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory import store
from ketenbus.trajectory.store import TrajectoryTransaction

from .test_trajectory_domain import NOW


@pytest.fixture
def commands() -> SentCommands:
    """Every command the unit of work's client sends, a transaction's commit too."""
    return SentCommands(keep_collectionless=True)


@pytest.fixture
async def uow(
    mongo_url: str, commands: SentCommands
) -> AsyncIterator[UnitOfWork[TrajectoryTransaction]]:
    async with watched_database(mongo_url, "trajectory", commands) as db:
        await store.ensure_indexes(db)
        yield UnitOfWork(
            db.client,
            db,
            service="trajectory",
            clock=FixedClock(NOW),
            transaction_class=TrajectoryTransaction,
        )
