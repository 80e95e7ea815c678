"""What learning's handlers, routes and idle check are given, built once from its settings
at start-up (`Runtime.start` says when)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ketenbus.contracts import sealing
from ketenbus.kit.clock import Clock
from ketenbus.kit.lease import Lease
from ketenbus.kit.logs import get_logger
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.uow import UnitOfWork
from ketenbus.learning import store
from ketenbus.learning.catalogue import Catalogue
from ketenbus.learning.settings import LearningSettings
from ketenbus.learning.store import LearningTransaction

log = get_logger(__name__)


@dataclass(frozen=True)
class LearningDependencies:
    settings: LearningSettings
    clock: Clock
    uow: UnitOfWork[LearningTransaction]
    catalogue: Catalogue
    # Opens the worker's feedback for the client to read; None: the client cannot read it.
    feedback_key: bytes | None
    # With replicas, the one holding it sweeps for abandoned modules (ketenbus.kit.lease);
    # None: this process is the only one (the tests).
    abandonment_lease: Lease | None = None

    @classmethod
    def from_settings(
        cls,
        settings: LearningSettings,
        *,
        uow: UnitOfWork[LearningTransaction],
        clock: Clock,
        abandonment_lease: Lease | None = None,
    ) -> LearningDependencies:
        """Only the catalogue is read from disk: the tests build it too, around an in-memory
        unit of work."""
        key = settings.feedback_sharing_key
        if key is None:
            log.warning("no FEEDBACK_SHARING_KEY: clients cannot read their worker's feedback")
        return cls(
            settings=settings,
            clock=clock,
            uow=uow,
            catalogue=Catalogue.load(settings.learning_catalogue_dir),
            feedback_key=sealing.key_from_text(key.get_secret_value()) if key else None,
            abandonment_lease=abandonment_lease,
        )


async def bootstrap(runtime: Runtime) -> LearningDependencies:
    settings = runtime.settings_as(LearningSettings)
    await store.ensure_indexes(runtime.db)
    master = settings.learning_master_key
    if master is None:
        log.warning("no LEARNING_MASTER_KEY: homework keys are stored unwrapped")
    homework_master_key = sealing.key_from_text(master.get_secret_value()) if master else None
    uow = runtime.unit_of_work(
        partial(LearningTransaction, homework_master_key=homework_master_key)
    )
    return LearningDependencies.from_settings(
        settings,
        uow=uow,
        clock=runtime.clock,
        abandonment_lease=Lease(runtime.db, "abandonment"),
    )
