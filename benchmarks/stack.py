"""The benchmark's own stack: Apache Kafka (one broker, KRaft, SASL_SSL) and secantusd-rs of
its own under a temporary home, on loopback only, and the five services as processes, exactly
as `ketenbus up` runs them. The benchmark's own clients connect as the operator
(ketenbus-admin, `stack.kafka.client_options()`); each service as its own user.

Two differences from the demo: the welfare organisations' caseloads are set far beyond any
load the benchmark makes, so every referral is accepted and opens a trajectory (with the
shipped caseloads of 60, 30 and 20 places, all but the first 110 would wait on the list); and
the front door's rate limit per referring organisation is lifted, as all the load comes from
one simulated GP practice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx

from ketenbus.devstack import access
from ketenbus.devstack.stack import EmbeddedStack

CAPACITY = 1_000_000


def write_capacity_file(home: Path) -> Path:
    path = home / "bench-capacity.json"
    organisations = {org: CAPACITY for org in access.WELFARE_ORGANISATIONS}
    path.write_text(json.dumps({"organisations": organisations}))
    return path


@contextlib.contextmanager
def bench_stack(keep_home: bool = False) -> Iterator[EmbeddedStack]:
    """An EmbeddedStack with its own servers; everything is stopped when the block ends,
    also on an error or Ctrl-C, and the processes die with this one if it is killed."""
    # Servers of the caller's environment would make this someone else's stack.
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL"):
        os.environ.pop(name, None)
    home = Path(tempfile.mkdtemp(prefix="ketenbus-bench-"))
    capacity = write_capacity_file(home)
    stack = EmbeddedStack(
        home / "stack",
        partners=list(access.KAFKA_PARTNERS),
        brokers=1,  # as in the figures it is compared with, whatever KETENBUS_KAFKA_BROKERS says
        service_env={
            "CAPACITY_FILE": str(capacity),
            # The front door's per-organisation limit (60 a minute) is a guard against one
            # misbehaving partner; the load here comes from one simulated referrer.
            "REFERRAL_RATE_PER_MINUTE": "1000000",
            "REFERRAL_BURST": "100000",
        },
        outlive_caller=False,
    )
    try:
        stack.start_infrastructure(timeout=120)
        yield stack
    finally:
        try:
            stack.stop()
        finally:
            if not keep_home:
                shutil.rmtree(home, ignore_errors=True)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format into (name, labels, value) samples."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


async def metrics(http: httpx.AsyncClient, url: str) -> list[tuple[str, dict[str, str], float]]:
    response = await http.get(f"{url}/metrics", timeout=5.0)
    response.raise_for_status()
    return parse_metrics(response.text)


def handled(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    """ketenbus_events_handled_total summed by outcome."""
    totals: dict[str, float] = {}
    for name, labels, value in samples:
        if name == "ketenbus_events_handled_total":
            outcome = labels.get("outcome", "")
            totals[outcome] = totals.get(outcome, 0.0) + value
    return totals


def sample(samples: list[tuple[str, dict[str, str], float]], wanted: str) -> float | None:
    return next((value for name, _, value in samples if name == wanted), None)
