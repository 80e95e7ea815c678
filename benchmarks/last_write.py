"""A unit of work's last write on secantusd-rs: a bulk write per collection against one
client-level bulkWrite, by the number of documents per collection (kit.last_write).

    uv run python -m benchmarks.last_write

Starts a secantusd-rs of its own on loopback under a temporary directory. Each transaction
reads one document (as a unit of work does before it writes), then writes `n` aggregates
(inserted, or replaced at their version), `n` inbox claims and `n` outbox documents, and
commits; each shape is measured twice, alternating. Prints the database's CPU and the wall
time per transaction; the report's figures came from it (kit.last_write.TOGETHER_AT_MOST).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, InsertOne, ReplaceOne
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from ketenbus.devstack.mongo_server import start_mongo

SIZES = (1, 3, 10, 30, 100)
DOCUMENTS_PER_SHAPE = 3_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def operation(name: str, document: dict[str, Any], replace: bool, namespace: str | None) -> Any:
    if replace and name == "docs":
        return ReplaceOne({"_id": document["_id"], "v": 0}, document, namespace=namespace)
    return InsertOne(document, namespace=namespace)


async def transaction(client: AsyncMongoClient[Any], n: int, together: bool, replace: bool) -> None:
    db = client["last_write"]
    ids = [uuid.uuid4().hex for _ in range(n)]
    if replace:
        await db.docs.insert_many([{"_id": i, "v": 0, "pad": "x" * 400} for i in ids])
    documents = {
        "docs": [{"_id": i, "v": 1, "pad": "y" * 400} for i in ids],
        "inbox": [{"_id": uuid.uuid4().hex, "type": "t"} for _ in range(n)],
        "outbox": [{"_id": uuid.uuid4().hex, "p": "z" * 800} for _ in range(n)],
    }
    async with (
        client.start_session() as session,
        await session.start_transaction(
            read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
        ),
    ):
        await db.docs.find_one({"_id": "first"}, session=session)
        if together:
            operations = [
                operation(name, d, replace, f"{db.name}.{name}")
                for name, ds in documents.items()
                for d in ds
            ]
            await client.bulk_write(operations, session=session, ordered=True)
            return
        for name, ds in documents.items():
            await db[name].bulk_write(
                [operation(name, d, replace, None) for d in ds], session=session
            )


async def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="ketenbus-last-write-"))
    server = start_mongo(home / "data", home / "mongo.log", outlive_caller=False)
    client: AsyncMongoClient[Any] = AsyncMongoClient(server.url)
    try:
        await client["last_write"].docs.insert_one({"_id": "first"})
        print("| documents per collection | write | shape | secantusd-rs CPU ms/tx | wall ms/tx |")
        print("|---|---|---|---|---|")
        for n in SIZES:
            rounds = max(DOCUMENTS_PER_SHAPE // (3 * n), 30)
            for replace in (False, True):
                for together in (False, True, False, True):
                    cpu, wall = cpu_seconds(server.pid), time.perf_counter()
                    for _ in range(rounds):
                        await transaction(client, n, together, replace)
                    cpu = (cpu_seconds(server.pid) - cpu) / rounds
                    wall = (time.perf_counter() - wall) / rounds
                    kind = "replace" if replace else "insert"
                    shape = "one bulkWrite" if together else "per collection"
                    print(f"| {n} | {kind} | {shape} | {cpu * 1e3:.2f} | {wall * 1e3:.2f} |")
    finally:
        await client.close()
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
