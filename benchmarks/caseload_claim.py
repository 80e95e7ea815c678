"""What claiming a place costs SecantusDB as an organisation's caseload grows (issue 9):
`uv run python -m benchmarks.caseload_claim`, about half a minute.

Intake's real `Caseloads.claim` against a secantusd-rs of its own (loopback, a temporary
directory), one claim after another for one organisation, and secantusd-rs's CPU per claim
measured over each stretch of places held. Beside it the layout until 2026-12-03, the same
update `Caseloads.claim` sent then (`$push` onto one document per organisation listing every
holder, with its `since` map), so the two are measured on the same server in the same run.
Writes benchmarks/results/<date>-caseload-claim.json and prints the table.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from benchmarks import machine
from ketenbus.devstack.mongo_server import start_mongo
from ketenbus.intake.caseloads import Caseloads
from ketenbus.kit.clock import SystemClock

HELD = (100, 750, 1_500, 3_000)  # places held at the end of each measured stretch
CAPACITY = 1_000_000  # as in the chain benchmark: every claim finds room
ORGANISATION = "welzijn-utrecht"
RESULTS = Path(__file__).resolve().parent / "results"


async def _until_2026_12_03(db: Any, referral_id: str) -> None:
    """The claim of the layout before 2026-12-03, as it was sent."""
    await db.places_before.update_one(
        {
            "_id": ORGANISATION,
            "holders": {"$ne": referral_id},
            f"holders.{CAPACITY - 1}": {"$exists": False},
        },
        {"$push": {"holders": referral_id}, "$set": {f"since.{referral_id}": datetime.now(UTC)}},
        upsert=True,
    )


async def _stretches(claim: Any, mongo_pid: int) -> list[dict[str, Any]]:
    rows, held = [], 0
    for until in HELD:
        started, cpu, own = time.perf_counter(), machine.cpu_seconds(mongo_pid), time.process_time()
        count = until - held
        for _ in range(count):
            await claim(f"ref_{uuid.uuid4().hex}")
        rows.append(
            {
                "places_held": f"{held:,} to {until:,}",
                "claims": count,
                "secantusd_cpu_ms_per_claim": round(
                    1000 * (machine.cpu_seconds(mongo_pid) - cpu) / count, 2
                ),
                "intake_cpu_ms_per_claim": round(1000 * (time.process_time() - own) / count, 2),
                "wall_ms_per_claim": round(1000 * (time.perf_counter() - started) / count, 2),
            }
        )
        held = until
    return rows


async def measure(mongo_url: str, mongo_pid: int) -> dict[str, Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        db = client.caseload_claim
        caseloads = Caseloads(db, lambda _: CAPACITY, SystemClock())

        async def claim_now(referral_id: str) -> None:
            assert (await caseloads.claim(ORGANISATION, referral_id)).has_room

        async def claim_before(referral_id: str) -> None:
            await _until_2026_12_03(db, referral_id)

        return {
            "before": await _stretches(claim_before, mongo_pid),
            "now": await _stretches(claim_now, mongo_pid),
        }
    finally:
        await client.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ketenbus-caseload-") as home:
        mongo = start_mongo(Path(home) / "mongo", Path(home) / "mongo.log", outlive_caller=False)
        try:
            found = asyncio.run(measure(mongo.url, mongo.pid))
        finally:
            mongo.stop()
    results = {
        "made": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "load_average": machine.load_average(),
        **found,
    }
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d-%H%M}-caseload-claim.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"| Places held | before: CPU ms per claim | now: CPU ms per claim |  (wrote {out.name})")
    for before, now in zip(found["before"], found["now"], strict=True):
        print(
            f"| {before['places_held']} | {before['secantusd_cpu_ms_per_claim']} "
            f"| {now['secantusd_cpu_ms_per_claim']} |"
        )


if __name__ == "__main__":
    main()
