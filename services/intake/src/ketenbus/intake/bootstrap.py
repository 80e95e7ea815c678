"""What intake's handlers, routes and dead-letter hook are given, built once from its
settings at start-up (`Runtime.start` says when)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from ketenbus.contracts import sealing
from ketenbus.intake import caseloads as caseload_store
from ketenbus.intake import signal_store, store
from ketenbus.intake.caseloads import Caseloads
from ketenbus.intake.front_desk import Made, Received, front_desk
from ketenbus.intake.personal import IntakeKeys
from ketenbus.intake.regions import CapacityTable, RegionTable
from ketenbus.intake.settings import IntakeSettings
from ketenbus.intake.store import IntakeTransaction
from ketenbus.kit.clock import Clock
from ketenbus.kit.lease import Lease
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.ratelimit import RateLimit
from ketenbus.kit.runtime import Runtime
from ketenbus.kit.together import Together
from ketenbus.kit.uow import UnitOfWork


@dataclass(frozen=True)
class IntakeDependencies:
    settings: IntakeSettings
    clock: Clock
    uow: UnitOfWork[IntakeTransaction]
    keys: IntakeKeys
    # Places per organisation, claimed outside the referral's transaction (see Caseloads).
    caseloads: Caseloads
    # Postcode to organisation.
    regions: RegionTable
    # Referrals at the front door at the same moment, received together.
    front_desk: Together[Received, Made]
    # The partner front door's limits per organisation (per replica).
    referral_limit: RateLimit
    status_limit: RateLimit
    # With replicas, the one holding it checks the signals' deadlines (ketenbus.kit.lease).
    signal_lease: Lease | None = None

    @classmethod
    def from_settings(
        cls,
        settings: IntakeSettings,
        *,
        uow: UnitOfWork[IntakeTransaction],
        clock: Clock,
        keys: IntakeKeys,
        caseloads: Caseloads,
        signal_lease: Lease | None = None,
        metrics: KitMetrics | None = None,
    ) -> IntakeDependencies:
        """Only the region table is read from disk: the tests build it too, around an
        in-memory unit of work."""
        regions = RegionTable.load(settings.regions_file)
        return cls(
            settings=settings,
            clock=clock,
            uow=uow,
            keys=keys,
            caseloads=caseloads,
            regions=regions,
            front_desk=front_desk(uow, caseloads, regions, metrics),
            referral_limit=RateLimit(settings.referral_rate_per_minute, settings.referral_burst),
            status_limit=RateLimit(
                settings.referral_status_rate_per_minute, settings.referral_status_burst
            ),
            signal_lease=signal_lease,
        )


async def bootstrap(runtime: Runtime) -> IntakeDependencies:
    settings = runtime.settings_as(IntakeSettings)
    await store.ensure_indexes(runtime.db)
    await signal_store.ensure_indexes(runtime.db)
    await caseload_store.ensure_indexes(runtime.db)
    keys = intake_keys(settings)
    capacities = CapacityTable.load(settings.capacity_file)
    caseloads = Caseloads(runtime.db, capacities.of, runtime.clock)
    # A process killed between claiming a place and committing its referral left a hold:
    # given back here, unless so recent that another replica's transaction may still commit.
    await caseloads.reconcile(capacities.capacities, older_than=timedelta(minutes=5))
    transaction = partial(
        IntakeTransaction,
        keys=keys,
        caseloads=caseloads,
        kafka_partners=frozenset(settings.partner_organisations),
    )
    return IntakeDependencies.from_settings(
        settings,
        uow=runtime.unit_of_work(transaction),
        clock=runtime.clock,
        keys=keys,
        caseloads=caseloads,
        signal_lease=Lease(runtime.db, "signal-deadlines"),
        metrics=runtime.metrics,
    )


def intake_keys(settings: IntakeSettings) -> IntakeKeys:
    return IntakeKeys(
        master=sealing.key_from_text(settings.ketenbus_master_key.get_secret_value()),
        contact_sharing=sealing.key_from_text(settings.contact_sharing_key.get_secret_value()),
        pseudonym=sealing.key_from_text(settings.pseudonym_key.get_secret_value()),
        partners={
            org: sealing.key_from_text(key.get_secret_value())
            for org, key in settings.partner_sharing_keys.items()
        },
    )
