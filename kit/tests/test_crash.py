"""A consumer killed with SIGKILL mid-stream and restarted ends with every effect once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from ketenbus.contracts.envelope import wrap
from ketenbus.contracts.events import ModuleCompleted
from ketenbus.contracts.topics import ENROLMENTS
from ketenbus.contracts.values import new_id
from ketenbus.devstack.kafka_access import ADMIN, KafkaAccess
from ketenbus.devstack.ports import free_port
from ketenbus.kit.broker import security

from .support import eventually

pytestmark = [pytest.mark.stack, pytest.mark.long]

EVENTS = 5_000


def start_counting_service(
    run: str, port: int, kafka: KafkaAccess, mongo: str, log: Path
) -> subprocess.Popen:
    env = {
        **os.environ,
        "KETENBUS_TEST_RUN": run,
        **kafka.service_environment(ADMIN),
        "MONGODB_URL": mongo,
        "HTTP_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("counting_service.py"))],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (
                await client.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            ).status_code == 200
    except httpx.HTTPError:
        return False


async def test_sigkill_mid_stream_then_restart_gives_exactly_one_effect_per_event(
    kafka, mongo_url, tmp_path
):
    run = uuid.uuid4().hex[:10]
    port = free_port()
    log = tmp_path / "counting.log"
    mongo = AsyncMongoClient(mongo_url, tz_aware=True)
    db = mongo[f"ketenbus_counting-{run}"]
    process = start_counting_service(run, port, kafka, mongo_url, log)
    try:
        # Seconds on a quiet machine; a whole-suite run on two busy cores once took more than
        # the minute this used to allow.
        await eventually(lambda: ready(port), timeout=180)
        broker = KafkaBroker(kafka.bootstrap, security=security(kafka.service_settings()))
        await broker.start()
        now = datetime.now(UTC)
        pending = []
        for number in range(EVENTS):
            event = ModuleCompleted(
                enrolment_id=new_id("enr"),
                client_ref=f"cl_{number % 50:032x}",
                organisation_id=f"org-{run}",
                module_id="grip-op-geld",
                completed_at=now,
            )
            envelope = wrap(event, source="learning")
            pending.append(
                await broker.publish(
                    envelope.to_bytes(),
                    ENROLMENTS.name,
                    key=event.client_ref.encode(),
                    no_confirm=True,
                )
            )
        for future in pending:
            await future
        await broker.stop()

        async def some_handled() -> bool:
            return await db.effects.count_documents({}) >= 50

        # Batches commit thousands a second: kill as soon as the first are in.
        await eventually(some_handled, timeout=120, every=0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        handled_before_kill = await db.effects.count_documents({})
        assert handled_before_kill < EVENTS, "the kill came too late to test anything"

        process = start_counting_service(run, port, kafka, mongo_url, log)

        async def all_handled() -> bool:
            return await db.effects.count_documents({}) >= EVENTS

        await eventually(all_handled, timeout=240, every=0.5)
        await eventually(lambda: ready(port), timeout=30)
        totals = await db.totals.find_one({"_id": "effects"})
        assert await db.effects.count_documents({}) == EVENTS
        assert totals["n"] == EVENTS
    finally:
        process.kill()
        process.wait(timeout=10)
        await mongo.close()
