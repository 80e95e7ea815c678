"""Commands carried out together (a group commit): while one is under way, the commands that
arrive wait for it, then go in one transaction together.

Why: an HTTP command alone pays its round trips to the database (its reads, its writes, the
commit) and wakes the outbox relay once; under load, commands that wait for each other pay
them once per group. A command that finds nothing under way goes at once, alone, exactly as
without this: a quiet front door answers as fast as before, and groups form only under load,
as large as the load makes them.

    together = Together(carry_out_together, most=50)
    result = await together.submit(command, alone=lambda: carry_out(command))

`carry_out_together(commands)` carries out several commands in one transaction and gives
one outcome per command: its result, or None for a command to be carried out alone after
all (one its caller must answer in a way the group cannot, e.g. a replay). When the group
fails, nothing of it happened: every command is carried out alone, each with its own
retries and errors, so that one bad command cannot fail the others. A group whose commit
may have happened (the commit's result unknown) is not carried out again: every command of
it fails as that command alone would (the caller hears 503 and decides)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Histogram

from ketenbus.kit.failures import may_have_committed
from ketenbus.kit.logs import get_logger

log = get_logger(__name__)

C = TypeVar("C")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[C, R]):
    command: C
    alone: Callable[[], Awaitable[R]]
    answer: asyncio.Future[R]


class Together(Generic[C, R]):
    def __init__(
        self,
        carry_out_together: Callable[[list[C]], Awaitable[list[R | None]]],
        *,
        most: int = 50,
        sizes: Histogram | None = None,
    ) -> None:
        self._carry_out_together = carry_out_together
        # The largest group: the rest waits for the next one.
        self._most = most
        # How many were carried out together each time (1: alone), for operators.
        self._sizes = sizes
        self._waiting: list[_Waiting[C, R]] = []
        self._busy = False
        # Held only so that the running group's task is not collected while it runs.
        self._next_group: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Commands waiting for what is under way."""
        return len(self._waiting)

    async def submit(self, command: C, alone: Callable[[], Awaitable[R]]) -> R:
        """The command's result: carried out at once and alone when nothing is under way,
        else with the commands that arrived meanwhile, when what is under way is done."""
        if not self._busy:
            self._busy = True
            self._observe(1)
            try:
                return await alone()
            finally:
                self._after()
        waiting = _Waiting(command, alone, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        return await waiting.answer

    def _after(self) -> None:
        """What is under way is done: the next group starts, or nothing is under way."""
        if not self._waiting:
            self._busy = False
            return
        group, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
        self._next_group = asyncio.create_task(self._carry_out(group))

    def _observe(self, size: int) -> None:
        if self._sizes is not None:
            self._sizes.observe(size)

    async def _carry_out(self, group: list[_Waiting[C, R]]) -> None:
        self._observe(len(group))
        try:
            if len(group) == 1:
                await _answer(group[0], group[0].alone())
                return
            try:
                outcomes = await self._carry_out_together([w.command for w in group])
            except Exception as error:
                if may_have_committed(error):
                    for waiting in group:
                        _fail(waiting, error)
                    return
                log.warning(
                    "commands_together_failed", commands=len(group), error=type(error).__name__
                )
                outcomes = [None] * len(group)
            for waiting, outcome in zip(group, outcomes, strict=True):
                if outcome is not None and not waiting.answer.done():
                    waiting.answer.set_result(outcome)
            await asyncio.gather(
                *(_answer(w, w.alone()) for w, o in zip(group, outcomes, strict=True) if o is None)
            )
        except BaseException:
            # Cancelled (the process stopping): its callers are not left waiting for ever.
            for waiting in group:
                waiting.answer.cancel()
            raise
        finally:
            self._after()


async def _answer(waiting: _Waiting[C, R], result: Awaitable[R]) -> None:
    """The caller's answer: the result, or the error it would have had alone."""
    try:
        outcome = await result
    except Exception as error:
        _fail(waiting, error)
        return
    if not waiting.answer.done():  # its caller gone (a closed connection): nobody to tell
        waiting.answer.set_result(outcome)


def _fail(waiting: _Waiting[C, R], error: Exception) -> None:
    if not waiting.answer.done():
        waiting.answer.set_exception(error)
