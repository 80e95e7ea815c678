"""Commands carried out together: alone when nothing is under way, together when they arrive
while something is, each with its own answer, and alone after all when the group fails."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from pymongo.errors import OperationFailure

from ketenbus.kit.metrics import KitMetrics
from ketenbus.kit.together import Together


class Desk:
    """A group commit around plain functions: what was carried out alone, and in which
    groups. The first command alone is held under way until `release()`."""

    def __init__(
        self, *, fail_group: Exception | None = None, replayed: frozenset[int] = frozenset()
    ):
        self.alone: list[int] = []
        self.groups: list[list[int]] = []
        self.fail_group = fail_group
        self.replayed = replayed
        self._hold = asyncio.Event()
        self.under_way = asyncio.Event()
        self.sizes = KitMetrics(CollectorRegistry(), "test").commands_together
        self.together: Together[int, str] = Together(
            self._carry_out_together, most=3, sizes=self.sizes
        )

    def release(self) -> None:
        self._hold.set()

    async def submit(self, command: int) -> str:
        return await self.together.submit(command, alone=lambda: self._alone(command))

    async def _alone(self, command: int) -> str:
        self.alone.append(command)
        if len(self.alone) == 1:
            self.under_way.set()
            await self._hold.wait()
        if command < 0:
            raise ValueError(f"command {command} refused")
        return f"{command} alone"

    async def _carry_out_together(self, commands: list[int]) -> list[str | None]:
        self.groups.append(commands)
        if self.fail_group is not None:
            raise self.fail_group
        return [None if c in self.replayed else f"{c} together" for c in commands]


async def waiting(desk: Desk, commands: list[int]) -> list[asyncio.Task[str]]:
    """Commands submitted while the first is under way: they wait, none is carried out."""
    tasks = [asyncio.create_task(desk.submit(c)) for c in commands]
    while desk.together.waiting < len(commands):
        await asyncio.sleep(0)  # each task reaches its queue in a turn of the loop
    return tasks


async def test_a_command_that_finds_nothing_under_way_is_carried_out_alone_at_once():
    desk = Desk()
    desk.release()
    assert await desk.submit(1) == "1 alone"
    assert await desk.submit(2) == "2 alone"
    assert desk.alone == [1, 2] and desk.groups == []


async def test_commands_that_arrive_while_one_is_under_way_go_together_in_groups_of_at_most():
    desk = Desk()
    first = asyncio.create_task(desk.submit(1))
    await desk.under_way.wait()
    later = await waiting(desk, [2, 3, 4, 5, 6])
    assert desk.groups == []
    desk.release()

    assert await first == "1 alone"
    assert [await t for t in later] == [f"{c} together" for c in (2, 3, 4, 5, 6)]
    assert desk.groups == [[2, 3, 4], [5, 6]] and desk.alone == [1]
    # For operators: three carried out, six commands (ketenbus_commands_together).
    [family] = desk.sizes.collect()
    observed = {s.name: s.value for s in family.samples}
    assert observed["ketenbus_commands_together_count"] == 3
    assert observed["ketenbus_commands_together_sum"] == 6


async def test_a_command_the_group_leaves_out_is_carried_out_alone_after_it():
    desk = Desk(replayed=frozenset({3}))
    first = asyncio.create_task(desk.submit(1))
    await desk.under_way.wait()
    later = await waiting(desk, [2, 3, 4])
    desk.release()

    await first
    assert [await t for t in later] == ["2 together", "3 alone", "4 together"]
    assert desk.alone == [1, 3]


async def test_a_failed_group_is_carried_out_alone_each_with_its_own_answer():
    desk = Desk(fail_group=OperationFailure("write conflict", code=112))
    first = asyncio.create_task(desk.submit(1))
    await desk.under_way.wait()
    later = await waiting(desk, [2, -3, 4])
    desk.release()

    await first
    answers = await asyncio.gather(*later, return_exceptions=True)
    assert answers[0] == "2 alone" and answers[2] == "4 alone"
    assert isinstance(answers[1], ValueError) and "-3 refused" in str(answers[1])
    assert desk.groups == [[2, -3, 4]] and sorted(desk.alone) == [-3, 1, 2, 4]


async def test_a_group_whose_commit_may_have_happened_is_not_carried_out_again():
    unknown = OperationFailure("commit result unknown", code=50)
    unknown._add_error_label("UnknownTransactionCommitResult")
    desk = Desk(fail_group=unknown)
    first = asyncio.create_task(desk.submit(1))
    await desk.under_way.wait()
    later = await waiting(desk, [2, 3])
    desk.release()

    await first
    for task in later:
        with pytest.raises(OperationFailure, match="commit result unknown"):
            await task
    assert desk.alone == [1]


async def test_after_a_group_a_quiet_door_carries_out_alone_again():
    desk = Desk()
    first = asyncio.create_task(desk.submit(1))
    await desk.under_way.wait()
    later = await waiting(desk, [2, 3])
    desk.release()
    await asyncio.gather(first, *later)

    assert await desk.submit(4) == "4 alone"
    assert desk.groups == [[2, 3]] and desk.alone == [1, 4]
