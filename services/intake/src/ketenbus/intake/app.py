"""Intake wired: the front door, the region table, the keys."""

from __future__ import annotations

from ketenbus.contracts import sealing
from ketenbus.contracts.events import (
    ClientContactShared,
    ConsentGranted,
    ReferralAccepted,
    ReferralDeclined,
    ReferralReceived,
    ReferralStatusChanged,
)
from ketenbus.intake import api, store
from ketenbus.intake.personal import IntakeKeys
from ketenbus.intake.regions import RegionTable
from ketenbus.intake.settings import IntakeSettings
from ketenbus.kit.runtime import Runtime, Service


async def prepare(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, IntakeSettings)
    await store.ensure_indexes(runtime.db)
    runtime.uow.resources["keys"] = IntakeKeys(
        master=sealing.key_from_text(settings.ketenbus_master_key.get_secret_value()),
        contact_sharing=sealing.key_from_text(settings.contact_sharing_key.get_secret_value()),
        pseudonym=sealing.key_from_text(settings.pseudonym_key.get_secret_value()),
    )
    runtime.dependencies["regions"] = RegionTable.load(settings.regions_file)


service = Service(
    name="intake",
    description="Referrals in from GPs, municipalities, early-warning signals and residents; "
    "consent, region routing, triage, and the closed loop back to the referrer.",
    routers=[api.router],
    publishes=[
        ReferralReceived,
        ReferralAccepted,
        ReferralDeclined,
        ReferralStatusChanged,
        ConsentGranted,
        ClientContactShared,
    ],
    transaction_class=store.IntakeTransaction,
    settings_class=IntakeSettings,
    prepare=prepare,
)
