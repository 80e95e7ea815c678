"""Binding handlers to a service's dependencies and reading its topics: no servers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from ketenbus.contracts.envelope import Envelope, Event, wrap
from ketenbus.contracts.topics import Topic
from ketenbus.kit.consumer import EventHandlers


class Noted(Event):
    owner: ClassVar[str] = "kittest"
    name: ClassVar[str] = "Noted"
    stream: ClassVar[Topic | None] = Topic("test.kit.noted", "kittest", "test topic")

    client_ref: str


class Told(Event):
    owner: ClassVar[str] = "kittest"
    name: ClassVar[str] = "Told"
    stream: ClassVar[Topic | None] = None

    client_ref: str


@dataclass(frozen=True)
class Dependencies:
    uow: Any
    notes: list[str]


def the_handlers() -> EventHandlers:
    handlers = EventHandlers("kittest")

    @handlers.on(Noted)
    async def note(event: Envelope[Noted], uow: Any, notes: list[str]) -> None:
        notes.append(f"{uow}: {event.data.client_ref}")

    @handlers.on(Told, topics=lambda settings: [f"test.kit.{org}.in" for org in settings])
    async def tell(event: Envelope[Told], notes: list[str]) -> None:
        notes.append(f"told {event.data.client_ref}")

    return handlers


async def test_each_handler_gets_what_it_names_from_the_dependencies_and_a_batch_as_uow():
    deps = Dependencies(uow="the unit of work", notes=[])
    handle = the_handlers().bind(deps)
    await handle(wrap(Noted(client_ref="cl_a"), source="kittest"))
    await handle(wrap(Told(client_ref="cl_b"), source="kittest"))
    await handle(wrap(Noted(client_ref="cl_c"), source="kittest"), uow="a batch")
    assert deps.notes == ["the unit of work: cl_a", "told cl_b", "a batch: cl_c"]


def test_a_handler_asking_for_what_the_service_does_not_provide_fails_at_binding():
    @dataclass(frozen=True)
    class Lacking:
        uow: Any

    with pytest.raises(TypeError, match=r"note needs \['notes'\]"):
        the_handlers().bind(Lacking(uow=None))


def test_topics_come_from_the_streams_and_from_the_settings_where_declared():
    subscription = the_handlers().subscription(["org-a", "org-b"])
    assert subscription.topics == ("test.kit.noted", "test.kit.org-a.in", "test.kit.org-b.in")
    assert subscription.closed == {"test.kit.org-a.in", "test.kit.org-b.in"}


def test_a_tool_without_settings_gets_the_topics_that_need_none():
    assert the_handlers().topics() == ["test.kit.noted"]


class OneTransaction:
    """What a read-ahead is called with besides its events: the batch's transaction."""

    def __init__(self) -> None:
        self.outgoing: list[Any] = []

    def reading_ahead(self) -> OneTransaction:
        return self


async def test_a_read_ahead_gets_what_it_names_after_its_transaction_once_per_batch():
    handlers = the_handlers()
    deps = Dependencies(uow=None, notes=[])

    @handlers.read_ahead(Noted, Told)
    async def both(events: list[Envelope[Any]], tx: Any, notes: list[str]) -> None:
        notes.append(" ".join(e.data.client_ref for e in events))

    batch = OneTransaction()
    events = [wrap(Noted(client_ref="cl_a"), source="kittest")]
    events.append(wrap(Told(client_ref="cl_b"), source="kittest"))

    await handlers.bind(deps).read_ahead(batch, events)  # type: ignore[arg-type]

    assert deps.notes == ["cl_a cl_b"]


def test_a_read_ahead_asking_for_what_the_service_does_not_provide_fails_at_binding():
    handlers = EventHandlers("kittest")

    @handlers.on(Told)
    async def tell(event: Envelope[Told]) -> None: ...

    @handlers.read_ahead(Told)
    async def told(events: list[Envelope[Any]], tx: Any, notes: list[str]) -> None: ...

    with pytest.raises(TypeError, match=r"told needs \['notes'\]"):
        handlers.bind(object())  # a service that provides nothing
