"""A minimal kit service for crash tests: counts ModuleCompleted events of one organisation.

Run as a script with KETENBUS_TEST_RUN set; the rest of the settings come from the
environment, as for any service.
"""

from __future__ import annotations

import os

from ketenbus.contracts.envelope import Envelope
from ketenbus.contracts.events import ModuleCompleted
from ketenbus.kit.consumer import EventHandlers
from ketenbus.kit.runtime import Service
from ketenbus.kit.serve import serve
from ketenbus.kit.uow import UnitOfWork

RUN = os.environ["KETENBUS_TEST_RUN"]
handlers = EventHandlers(f"counting-{RUN}")


@handlers.on(ModuleCompleted)
async def count(event: Envelope[ModuleCompleted], uow: UnitOfWork) -> None:
    async with uow.handling(event) as tx:
        if event.data.organisation_id != f"org-{RUN}":
            return  # another test's event on the shared topic
        await tx.db.effects.insert_one({"_id": event.id}, session=tx.session)
        await tx.db.totals.update_one(
            {"_id": "effects"}, {"$inc": {"n": 1}}, upsert=True, session=tx.session
        )


if __name__ == "__main__":
    serve(Service(name=f"counting-{RUN}", handlers=handlers))
