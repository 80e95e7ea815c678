"""A worker's actions that reach trajectory at the same moment, carried out together: in one
transaction, their trajectories read in one query, through `ketenbus.kit.together` (as
intake's front door receives referrals, `ketenbus.intake.front_desk`).

Why: an action alone pays four round trips to the database (the trajectory read, its write,
the outbox, the commit) and one publication by the relay. At 100 appointments/s that was
most of trajectory's CPU, and much of the database's, while the appointment chain
missed its latency target for want of CPU. Actions that arrive while one is under way wait
for it and then pay those round trips once for the group. An action that finds the desk
quiet is carried out at once and alone, as before.

Each keeps its own answer, made from its trajectory as the action left it: a later action
of the same group on the same trajectory (a reschedule right after the scheduling) does not
change what the earlier one answers."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from ketenbus.kit.auth import Caller
from ketenbus.kit.failures import retrying
from ketenbus.kit.logs import bound, log_context
from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.together import Together
from ketenbus.kit.uow import Batch, UnitOfWork
from ketenbus.trajectory.domain import NotFound, Trajectory
from ketenbus.trajectory.store import TrajectoryTransaction

T = TypeVar("T")


async def own(tx: TrajectoryTransaction, trajectory_id: str, caller: Caller) -> Trajectory:
    """The trajectory, when it is of the caller's organisation."""
    trajectory = await tx.trajectories.get(trajectory_id)
    # Another organisation's trajectory does not exist, as far as this caller can tell.
    if trajectory is None or trajectory.organisation_id != caller.organisation_id:
        raise NotFound(f"no trajectory {trajectory_id} at your organisation")
    return trajectory


# What the worker does to their trajectory, and what it gives back (an appointment, ...).
Action = Callable[[Trajectory, TrajectoryTransaction], T | Awaitable[T]]


@dataclass(frozen=True)
class Change(Generic[T]):
    """One action of a worker on one of their organisation's trajectories, and how its
    answer is made from the trajectory and the action's result."""

    trajectory_id: str
    caller: Caller
    action: Action[T]
    answer: Callable[[Trajectory, T], BaseModel]
    correlation_id: str | None

    async def carry_out(self, trajectory: Trajectory, tx: TrajectoryTransaction) -> BaseModel:
        """Act on the trajectory, save it, answer from it as the action left it."""
        result = self.action(trajectory, tx)
        if inspect.isawaitable(result):
            result = await result
        await tx.trajectories.save(trajectory)
        return self.answer(trajectory, result)


async def alone(uow: UnitOfWork[TrajectoryTransaction], change: Change[Any]) -> BaseModel:
    """One transaction for the one action, tried again when the worker raced an event or the
    overdue check for the same trajectory."""

    async def attempt() -> BaseModel:
        async with uow.command(change.correlation_id) as tx:
            return await change.carry_out(await own(tx, change.trajectory_id, change.caller), tx)

    return await retrying(attempt)


async def carry_out_together(
    uow: UnitOfWork[TrajectoryTransaction], group: list[Change[Any]]
) -> list[BaseModel | None]:
    """The group's actions in one transaction, in the order they came; None for an action on
    a trajectory that is not the caller's to see, which its own path answers (404). Any
    other failure undoes the group, and each action is then carried out alone."""
    async with uow.batch() as batch:
        await batch.reading_ahead().trajectories.read_ahead(c.trajectory_id for c in group)
        answers = [await _carry_out_in(batch, change) for change in group]
    return answers


async def _carry_out_in(
    batch: Batch[TrajectoryTransaction], change: Change[Any]
) -> BaseModel | None:
    """One action of a group, under its own correlation id; None: not the caller's to see."""
    with log_context(correlation_id=change.correlation_id):
        async with batch.command(change.correlation_id) as tx:
            try:
                trajectory = await own(tx, change.trajectory_id, change.caller)
            except NotFound:
                return None
            return await change.carry_out(trajectory, tx)


class Desk:
    """Where the workers' actions are carried out: together when they come at once."""

    def __init__(
        self, uow: UnitOfWork[TrajectoryTransaction], metrics: KitMetrics | None = None
    ) -> None:
        self.uow = uow
        sizes = metrics.commands_together if metrics is not None else None
        self.together: Together[Change[Any], BaseModel] = Together(
            partial(carry_out_together, uow), sizes=sizes
        )

    async def change(
        self,
        trajectory_id: str,
        caller: Caller,
        action: Action[T],
        answer: Callable[[Trajectory, T], BaseModel],
    ) -> Any:
        """The worker's action on their trajectory, and its answer."""
        correlation_id = bound("correlation_id")
        command = Change(trajectory_id, caller, action, answer, correlation_id)
        return await self.together.submit(command, alone=partial(alone, self.uow, command))
