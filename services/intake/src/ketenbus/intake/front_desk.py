"""Referrals that reach the front door at the same time, received together: in one
transaction, read ahead as a partner's batch is (`reception.read_ahead`), through
`ketenbus.kit.together`.

Why: a referral received alone pays five round trips to the database (its key, the person,
the place, its new documents with the outbox, the commit) and one publication by the relay.
At 100 referrals/s that was most of intake's CPU and of the database's: the referral chain
missed its target for want of CPU. Referrals that arrive while one is being received wait
for it and then pay those round trips once for the group. A referral that finds the front
door quiet is received at once and alone, as before.

Each keeps its own answer: its status (accepted, waitlisted, declined), and a replay or a
refusal of its Idempotency-Key, which the group leaves to the referral's own path (`api.refer`)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import TypeAlias

from ketenbus.intake import reception
from ketenbus.intake.caseloads import Caseloads
from ketenbus.intake.domain import Referral
from ketenbus.intake.regions import RegionTable
from ketenbus.intake.store import IntakeTransaction
from ketenbus.intake.waiting_list import recheck_waiting_list
from ketenbus.kit.logs import log_context
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.together import Together
from ketenbus.kit.uow import Batch, UnitOfWork

# The referral, and whether it was made before (a replay of its Idempotency-Key).
Made: TypeAlias = tuple[Referral, bool]


@dataclass(frozen=True)
class Received:
    """A referral at the front door, checked and ready to be received."""

    submission: reception.Submission
    idempotency_key: str | None
    # The keyed print of the request, kept beside the key (ketenbus.intake.idempotency).
    request_print: str
    # Its id on every attempt, together or alone: the place it claims is found again.
    referral_id: str
    correlation_id: str | None

    async def receive_in(self, tx: IntakeTransaction, regions: RegionTable) -> Referral:
        """Received in this transaction: alone (`api.refer`), or as one of a group."""
        return await reception.receive(
            tx,
            self.submission,
            regions,
            self.idempotency_key,
            self.request_print,
            referral_id=self.referral_id,
        )


async def receive_together(
    uow: UnitOfWork[IntakeTransaction],
    caseloads: Caseloads,
    regions: RegionTable,
    group: list[Received],
) -> list[Made | None]:
    """The group's referrals received in one transaction; None for one whose key made a
    referral before (in the database, or earlier in this group): its own path answers it.
    If the group fails, the places it claimed go back (as one referral's do when it fails
    alone: `reception.claimed_for`), and then each is received alone."""
    async with AsyncExitStack() as claims:
        for received in group:
            await claims.enter_async_context(
                reception.claimed_for(
                    caseloads, received.referral_id, lambda freed: recheck_waiting_list(uow, freed)
                )
            )
        async with uow.batch() as batch:
            await reception.read_ahead(
                batch.reading_ahead(), regions, [_arriving(received) for received in group]
            )
            outcomes = [await _receive(batch, regions, received) for received in group]
    return outcomes


async def _receive(
    batch: Batch[IntakeTransaction], regions: RegionTable, received: Received
) -> Made | None:
    referrer = received.submission.referrer.organisation_id
    with log_context(correlation_id=received.correlation_id):
        async with batch.command(received.correlation_id) as tx:
            key = received.idempotency_key
            if key is not None and await tx.referrals.by_idempotency_key(referrer, key):
                return None
            return await received.receive_in(tx, regions), False


def _arriving(received: Received) -> reception.Arriving:
    key = received.idempotency_key
    return reception.Arriving(
        referral_id=received.referral_id,
        key=(received.submission.referrer.organisation_id, key) if key is not None else None,
        details=received.submission.client,
        consented=bool(received.submission.consent.purposes),
    )


def front_desk(
    uow: UnitOfWork[IntakeTransaction],
    caseloads: Caseloads,
    regions: RegionTable,
    metrics: KitMetrics | None = None,
) -> Together[Received, Made]:
    sizes = metrics.commands_together if metrics is not None else None
    return Together(partial(receive_together, uow, caseloads, regions), sizes=sizes)
