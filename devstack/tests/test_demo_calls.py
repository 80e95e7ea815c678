"""The demo's calls to the chain when the connection fails: a call sent with an
Idempotency-Key is asked again (the service may have done it, and the key returns what the
first made); any other is counted as refused at once, never sent twice. Against a real
closed port on loopback."""

from __future__ import annotations

import httpx

from ketenbus.devstack.chain_client import ChainClient
from ketenbus.devstack.ports import free_port
from ketenbus.devstack.simulation import Year, YearOptions


async def test_only_a_keyed_call_is_asked_again_after_a_failed_connection():
    chain = ChainClient({}, tokens=lambda organisation, role: "unused")
    year = Year(chain, YearOptions(days=1, clients=1), anchor=0.0, out=None)
    nowhere = f"http://127.0.0.1:{free_port()}/v1/referrals"  # nothing listens there
    tries: list[str] = []

    async def call(which: str) -> None:
        tries.append(which)
        async with httpx.AsyncClient(timeout=2.0) as http:
            await http.post(nowhere, json={})

    try:
        assert await year._act("referral", lambda: call("keyed"), attempts=3, keyed=True) is None
        assert await year._act("contact", lambda: call("unkeyed"), attempts=3) is None
    finally:
        await chain.close()

    assert tries == ["keyed"] * 3 + ["unkeyed"]
    assert year.counts.failed == 2
    assert all("ConnectError" in failure for failure in year.counts.failures)
