"""Trajectory wired: worker actions over HTTP, reactions to referrals and modules."""

from __future__ import annotations

from ketenbus.contracts.events import (
    AppointmentAttended,
    AppointmentMissed,
    AppointmentScheduled,
    ModuleAssigned,
    ModuleProgressRecorded,
    TrajectoryOpened,
)
from ketenbus.kit.runtime import Runtime, Service
from ketenbus.kit.settings import ServiceSettings
from ketenbus.trajectory import api, store
from ketenbus.trajectory.handlers import handlers


class TrajectorySettings(ServiceSettings):
    service_name: str = "trajectory"
    http_port: int = 8002


async def prepare(runtime: Runtime) -> None:
    await store.ensure_indexes(runtime.db)


service = Service(
    name="trajectory",
    description="The help trajectory: phases, appointments, contacts, modules as homework, "
    "hand-off to debt counselling, closure and aftercare.",
    handlers=handlers,
    routers=[api.router],
    publishes=[
        TrajectoryOpened,
        AppointmentScheduled,
        AppointmentAttended,
        AppointmentMissed,
        ModuleAssigned,
        ModuleProgressRecorded,
    ],
    transaction_class=store.TrajectoryTransaction,
    settings_class=TrajectorySettings,
    prepare=prepare,
)
