"""The places each organisation has: taken and given back outside any transaction.

Why not the caseload count inside the referral's transaction (as before issue 9): every
referral to an organisation wrote that one document, so concurrent referrals conflicted, and
after the kit's retries the front door answered 503 (107 of 250 at 25 referrals/s). Why not
triage in the consumer: the referrer is promised an answer (accepted or waitlisted) in the
response, and the closed loop's tests and partners rely on it.

Two collections:
- `places`: one document per place held, `_id` the referral's id (so a referral holds at most
  one), with its organisation and since when;
- `caseloads`: per organisation the count of its places held, `held`.

A claim is one client-level bulk write, ordered: the count raised only while below capacity,
then the place inserted. The database applies single-document updates one after another, so
no two referrals get the last place and no caller sees a conflict. Both are small documents
of their own: a claim costs the same whatever the caseload (the layout before 2026-12-03
pushed every holder onto one document per organisation, which the database rewrote at every
claim: 1.7 ms of its CPU at 750 places held, 6.7 ms at 3,000).

The claim is idempotent (a referral that holds a place keeps it), so a retried transaction
claims nothing twice, and a place is given back by the same id, so a repeated release frees
nothing twice. What the transaction does not undo, the caller does: a claim whose referral
did not commit as accepted is released (`release_unless_accepted`); a process killed between
claim and commit leaves a place held that `reconcile` gives back at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ClientBulkWriteException, DuplicateKeyError

from ketenbus.intake.domain import Organisation, ReferralState
from ketenbus.kit.clock import Clock
from ketenbus.kit.last_write import single_client_write_error
from ketenbus.kit.logs import get_logger

log = get_logger(__name__)

_DUPLICATE_KEY = 11000
# Compare-and-set rounds of a recount before it gives up until the next start.
RECOUNT_ATTEMPTS = 5


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    await db.places.create_index("organisation_id")


class Caseloads:
    def __init__(self, db: AsyncDatabase[Any], capacity_of: Any, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.places = db.places
        self.caseloads = db.caseloads
        self.capacity_of = capacity_of
        self._known: set[str] = set()

    async def claim(self, organisation_id: str, referral_id: str) -> Organisation:
        """A place for this referral if one is free (or it holds one already). The answer is
        the caseload as this referral sees it: room left if and only if the place is its.

        One round trip when a place is free, two when not (whether the referral holds one
        already: a retried command, a redelivery)."""
        capacity = self.capacity_of(organisation_id)
        if capacity is None:
            return Organisation(organisation_id, None)
        await self._exists(organisation_id)
        taken = capacity > 0 and await self._take(organisation_id, referral_id)
        if taken or await self._holds(referral_id):
            return self.held(organisation_id)
        return Organisation(organisation_id, capacity, occupied=capacity)

    async def claim_ahead(self, claims: list[tuple[str, str]]) -> set[str]:
        """Places for a batch's referrals, (organisation, referral) in the batch's order, in
        one ordered round trip; the referrals that hold one now. The write stops at the first
        that finds its organisation full (or its place held already): that one and those
        after it are left to `claim`, one by one."""
        wanted = [(o, r) for o, r in claims if (self.capacity_of(o) or 0) > 0]
        if not wanted:
            return set()
        for organisation_id in sorted({o for o, _ in wanted}):
            await self._exists(organisation_id)
        writes = [
            write
            for organisation_id, referral_id in wanted
            for write in self._claim_writes(organisation_id, referral_id)
        ]
        try:
            await self.db.client.bulk_write(writes)
            return {referral_id for _, referral_id in wanted}
        except ClientBulkWriteException as error:
            failed = error.write_errors or []
            if len(failed) != 1 or failed[0].get("code") != _DUPLICATE_KEY:
                raise single_client_write_error(error, "caseloads, places") from None
            stopped, write = divmod(failed[0]["idx"], 2)
            if write == 1:
                # Its place was held already: the count raised for it goes down again.
                await self._count(wanted[stopped][0], -1)
            return {referral_id for _, referral_id in wanted[:stopped]}

    def held(self, organisation_id: str) -> Organisation:
        """The caseload as a referral that holds one of its places sees it: the last free
        place as triage sees it (its take_place counts this one)."""
        capacity = self.capacity_of(organisation_id)
        assert capacity is not None, "a place is held only where places are counted"
        return Organisation(organisation_id, capacity, occupied=capacity - 1)

    async def _take(self, organisation_id: str, referral_id: str) -> bool:
        """Whether the referral has a place: taken now, or held already. False when every
        place is held, which cannot tell whether one of them is this referral's."""
        try:
            await self.db.client.bulk_write(self._claim_writes(organisation_id, referral_id))
            return True
        except ClientBulkWriteException as error:
            failed = error.write_errors or []
            if len(failed) != 1 or failed[0].get("code") != _DUPLICATE_KEY:
                raise single_client_write_error(error, "caseloads, places") from None
            if failed[0].get("idx") == 0:
                return False  # full
            # The referral holds a place already: the count raised for it goes down again.
            await self._count(organisation_id, -1)
            return True

    async def _holds(self, referral_id: str) -> bool:
        """Whether the referral holds a place already (a retried command, a redelivery)."""
        return await self.places.find_one({"_id": referral_id}, projection=["_id"]) is not None

    async def release(self, organisation_id: str, referral_id: str) -> bool:
        """The referral's place given back; False when it held none (a repeated release)."""
        given_back = await self.places.delete_one(
            {"_id": referral_id, "organisation_id": organisation_id}
        )
        if not given_back.deleted_count:
            return False
        await self._count(organisation_id, -1)
        return True

    async def release_unless_accepted(self, referral_id: str) -> list[str]:
        """After a failed command: the place goes back unless the referral did commit as
        accepted (a commit whose result was unknown may have happened). Returns the
        organisations that have a place free again."""
        referral = await self.db.referrals.find_one({"_id": referral_id}, projection=["state"])
        if referral is not None and referral["state"] == ReferralState.ACCEPTED.value:
            return []
        place = await self.places.find_one({"_id": referral_id})
        if place is None or not await self.release(place["organisation_id"], referral_id):
            return []
        return [place["organisation_id"]]

    async def occupied(self, organisation_id: str) -> int:
        document = await self.caseloads.find_one({"_id": organisation_id}) or {}
        return int(document.get("held", 0))

    async def reconcile(self, organisation_ids: Iterable[str], older_than: timedelta) -> None:
        """At start-up: the places held are exactly the accepted referrals, plus claims so
        recent that their transaction may still commit (another replica's); then each count
        is made the number of places again."""
        # The layout before 2026-12-03 (one document per organisation listing every holder):
        # its places are made again below from the accepted referrals.
        await self.places.delete_many({"holders": {"$exists": True}})
        cutoff = self.clock.now() - older_than
        for organisation_id in organisation_ids:
            await self._exists(organisation_id)
            accepted = {
                d["_id"]
                async for d in self.db.referrals.find(
                    {
                        "placement.organisation_id": organisation_id,
                        "state": ReferralState.ACCEPTED.value,
                    },
                    projection=["_id"],
                )
            }
            held = {
                d["_id"]: _aware(d["since"])
                async for d in self.places.find({"organisation_id": organisation_id})
            }
            for referral_id, since in held.items():
                if referral_id not in accepted and since < cutoff:
                    await self.release(organisation_id, referral_id)
            for referral_id in sorted(accepted - held.keys()):
                # Accepted keeps its place, over capacity if it must; another replica
                # reconciling at the same moment may have made it.
                with suppress(DuplicateKeyError):
                    await self.places.insert_one(self._place(organisation_id, referral_id))
            await self._recount(organisation_id)

    async def _recount(self, organisation_id: str) -> None:
        """The count made the number of places, unless a claim or release changed it
        meanwhile (then looked at again, a few times: on a stack whose claims never pause it
        is left for the next start, and said so). A process killed between a place and its
        count (giving back a place, or taking back the raise of a referral that held one)
        leaves the count one too high: a place unused until this runs."""
        for _ in range(RECOUNT_ATTEMPTS):
            counted = await self.occupied(organisation_id)
            present = await self.places.count_documents({"organisation_id": organisation_id})
            if counted == present:
                return
            corrected = await self.caseloads.update_one(
                {"_id": organisation_id, "held": counted}, {"$set": {"held": present}}
            )
            if corrected.modified_count:
                return
        log.warning(
            "caseload count not corrected: claims kept changing it",
            organisation_id=organisation_id,
            attempts=RECOUNT_ATTEMPTS,
        )

    async def _count(self, organisation_id: str, change: int) -> None:
        await self.caseloads.update_one({"_id": organisation_id}, {"$inc": {"held": change}})

    async def _exists(self, organisation_id: str) -> None:
        if organisation_id in self._known:
            return
        # Made at the same moment by another referral: it exists, which is the point.
        with suppress(DuplicateKeyError):
            await self.caseloads.update_one(
                {"_id": organisation_id}, {"$setOnInsert": {"held": 0}}, upsert=True
            )
        self._known.add(organisation_id)

    def _claim_writes(self, organisation_id: str, referral_id: str) -> list[Any]:
        """The count raised while below capacity, then the place: for an ordered write."""
        return [
            # An upsert of an organisation whose caseload exists (`_exists`): when it is
            # full the filter matches nothing, the upsert's insert collides with the existing
            # `_id`, and that error stops the ordered write before the place is inserted. A
            # plain update would match nothing and go on.
            UpdateOne(
                namespace=self._namespace("caseloads"),
                filter={"_id": organisation_id, "held": {"$lt": self.capacity_of(organisation_id)}},
                update={"$inc": {"held": 1}},
                upsert=True,
            ),
            InsertOne(
                namespace=self._namespace("places"),
                document=self._place(organisation_id, referral_id),
            ),
        ]

    def _place(self, organisation_id: str, referral_id: str) -> dict[str, Any]:
        return {"_id": referral_id, "organisation_id": organisation_id, "since": self.clock.now()}

    def _namespace(self, collection: str) -> str:
        return f"{self.db.name}.{collection}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
