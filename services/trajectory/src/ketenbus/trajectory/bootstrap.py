"""What trajectory's handlers, routes, overdue check and dead-letter purge are given, built
once from its settings at start-up (`Runtime.start` says when)."""

from __future__ import annotations

from dataclasses import dataclass

from ketenbus.contracts import access, sealing
from ketenbus.kit.broker import client_options
from ketenbus.kit.clock import Clock
from ketenbus.kit.dead_letter_purges import LEASE, DeadLetterPurger
from ketenbus.kit.lease import Lease
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.uow import UnitOfWork
from ketenbus.trajectory import store
from ketenbus.trajectory.desk import Desk
from ketenbus.trajectory.settings import TrajectorySettings
from ketenbus.trajectory.store import TrajectoryTransaction


@dataclass(frozen=True)
class TrajectoryDependencies:
    settings: TrajectorySettings
    clock: Clock
    uow: UnitOfWork[TrajectoryTransaction]
    # The workers' actions, carried out together when they come at the same moment.
    desk: Desk
    # Seals the worker's feedback on homework for learning; None: feedback cannot be sent.
    feedback_key: bytes | None
    # With replicas, the one holding it runs the overdue check (ketenbus.kit.lease);
    # None: this process is the only one (the tests).
    overdue_lease: Lease | None = None
    # Forgets erased clients' dead letters on every DLQ of the chain (trajectory is the
    # purger: ketenbus.contracts.access); None: not here (the tests without Kafka).
    dead_letter_purger: DeadLetterPurger | None = None

    @classmethod
    def from_settings(
        cls,
        settings: TrajectorySettings,
        *,
        uow: UnitOfWork[TrajectoryTransaction],
        clock: Clock,
        overdue_lease: Lease | None = None,
        dead_letter_purger: DeadLetterPurger | None = None,
        metrics: KitMetrics | None = None,
    ) -> TrajectoryDependencies:
        """No I/O: the tests build it too, around an in-memory unit of work."""
        shared = settings.feedback_sharing_key
        return cls(
            settings=settings,
            clock=clock,
            uow=uow,
            desk=Desk(uow, metrics),
            feedback_key=sealing.key_from_text(shared.get_secret_value()) if shared else None,
            overdue_lease=overdue_lease,
            dead_letter_purger=dead_letter_purger,
        )


async def bootstrap(runtime: Runtime) -> TrajectoryDependencies:
    settings = runtime.settings_as(TrajectorySettings)
    await store.ensure_indexes(runtime.db)
    return TrajectoryDependencies.from_settings(
        settings,
        uow=runtime.unit_of_work(TrajectoryTransaction),
        clock=runtime.clock,
        overdue_lease=Lease(runtime.db, "overdue-check"),
        dead_letter_purger=DeadLetterPurger(
            runtime.db,
            client_options(settings),
            access.topics_with_dead_letters(settings.partner_organisations),
            # Checked before each partition; a partition's purge takes well under 40 s.
            lease=Lease(runtime.db, LEASE, seconds=60),
            every_seconds=settings.dead_letter_purge_seconds,
        ),
        metrics=runtime.metrics,
    )
