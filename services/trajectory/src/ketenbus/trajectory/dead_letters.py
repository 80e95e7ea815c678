"""Forgetting erased clients' dead letters, on every dead-letter topic of the chain.

Trajectory is the one service that purges them (ketenbus.contracts.access says why); its
erasure handler asks for the purge, and this loop, on the replica holding the lease, does it
(ketenbus.kit.dead_letter_purges)."""

from __future__ import annotations

from ketenbus.trajectory.bootstrap import TrajectoryDependencies


async def purge_erased_clients_dead_letters(deps: TrajectoryDependencies) -> None:
    if deps.dead_letter_purger is not None:
        await deps.dead_letter_purger.run()
