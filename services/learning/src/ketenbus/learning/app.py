"""Learning wired: enrolments from assignments, the client portal's HTTP API."""

from __future__ import annotations

from ketenbus.contracts.events import ModuleCompleted, ModuleStarted
from ketenbus.kit.runtime import Runtime, Service
from ketenbus.kit.settings import ServiceSettings
from ketenbus.learning import api, store
from ketenbus.learning.handlers import handlers


class LearningSettings(ServiceSettings):
    service_name: str = "learning"
    http_port: int = 8004


async def prepare(runtime: Runtime) -> None:
    await store.ensure_indexes(runtime.db)


service = Service(
    name="learning",
    description="Self-help modules and questionnaires: assigned, started, completed, abandoned.",
    handlers=handlers,
    routers=[api.router],
    publishes=[ModuleStarted, ModuleCompleted],
    transaction_class=store.LearningTransaction,
    settings_class=LearningSettings,
    prepare=prepare,
)
