"""Play a planned year through the real services, each action at its simulated moment.

The services and the simulation read the same accelerated clock (ScaledClock: the same start,
anchor and speed), so "three days before the appointment" is three simulated days for
everyone. The simulation only does what people do: referrers refer, workers schedule,
register and close, clients work in the portal. It counts what it did, so the report's
figures can be checked against it. Anything the chain cannot do yet (a route that does not
exist) is skipped and named in the report.

Every action of a resident's help runs at its own simulated moment, waiting only for the
actions it needs (registering an appointment needs it scheduled; closing needs everything
before it done), so one slow answer does not push the rest of the year back. When a
trajectory opens (at once, or when a waiting resident's turn comes) the simulation learns
from trajectory's topic, with one consumer, instead of asking trajectory's API again and
again for every resident on a waiting list.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaConsumer

from ketenbus.contracts.envelope import UndeliverableEvent, decode
from ketenbus.contracts.events import TrajectoryOpened
from ketenbus.contracts.topics import TRAJECTORIES
from ketenbus.devstack.chain_client import ChainClient, ChainError, missing_route
from ketenbus.devstack.kafka_access import KafkaAccess
from ketenbus.devstack.working_hours import appointment_slot
from ketenbus.devstack.year_scenario import DEBT_COUNSELLING, Client, plan_year
from ketenbus.kit.broker import partitions_of
from ketenbus.kit.clock import ScaledClock

LOCAL = ZoneInfo("Europe/Amsterdam")
# Every so many residents works during the day: their follow-ups are in the evening slots.
EVENING_CLIENTS = 8
CONTACT_CHANNEL = {"face_to_face": "face_to_face", "phone": "phone", "video": "video"}


@dataclass(frozen=True)
class YearOptions:
    start: datetime = datetime(2025, 1, 1, 7, 0, tzinfo=LOCAL)
    days: int = 365
    # Sized for a two-core machine: the five services and their Python MongoDB server answer
    # some eight to ten calls a second there (about 65 ms of CPU each, all processes
    # together); a resident makes about 17 calls in a year, so 200 residents at this speed
    # make about nine a second (the year in 394 s; one real second is 22 simulated hours).
    clients: int = 200
    speed: float = 80_000.0
    seed: int = 2025

    @classmethod
    def from_environment(cls) -> YearOptions:
        """KETENBUS_DEMO_DAYS, _CLIENTS, _SPEED, _SEED, _START override the defaults."""
        env, default = os.environ, cls()
        start = env.get("KETENBUS_DEMO_START")
        return cls(
            start=datetime.fromisoformat(start) if start else default.start,
            days=int(env.get("KETENBUS_DEMO_DAYS", default.days)),
            clients=int(env.get("KETENBUS_DEMO_CLIENTS", default.clients)),
            speed=float(env.get("KETENBUS_DEMO_SPEED", default.speed)),
            seed=int(env.get("KETENBUS_DEMO_SEED", default.seed)),
        )

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def clock(self, anchor: float) -> ScaledClock:
        return ScaledClock(self.start, anchor, self.speed)

    def clock_environment(self, anchor: float) -> dict[str, str]:
        """What every service must be started with to share the simulation's clock."""
        return {
            "KETENBUS_CLOCK_START": self.start.isoformat(),
            "KETENBUS_CLOCK_ANCHOR": repr(anchor),
            "KETENBUS_CLOCK_SPEED": repr(self.speed),
        }


@dataclass
class OrganisationCounts:
    referrals: int = 0
    waitlisted: int = 0
    opened: int = 0
    crises: int = 0
    intake_attended: int = 0
    intake_missed: int = 0
    follow_up_attended: int = 0
    follow_up_missed: int = 0
    contacts: int = 0
    homework_contacts: int = 0
    modules_assigned: int = 0
    modules_started: int = 0
    modules_completed: int = 0
    handoffs: int = 0
    aftercare: int = 0
    closed: int = 0
    # Minutes of the contacts of the cases that were closed (what time per case divides).
    closed_registration_minutes: int = 0
    closed_dossier_minutes: int = 0


@dataclass
class YearCounts:
    organisations: dict[str, OrganisationCounts] = field(default_factory=dict)
    declined: int = 0
    planned: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    closure_reasons: Counter[str] = field(default_factory=Counter)
    # How late each action's first call went out against its planned moment, in simulated
    # hours, and the action that was latest (its name and planned moment).
    lags: list[float] = field(default_factory=list)
    latest: tuple[str, datetime] | None = None

    def of(self, organisation: str) -> OrganisationCounts:
        return self.organisations.setdefault(organisation, OrganisationCounts())

    @property
    def worst_lag_hours(self) -> float:
        """How far behind its plan the simulation ran, at worst, in simulated hours."""
        return max(self.lags, default=0.0)

    def lag_hours(self, share: float) -> float:
        """The lag that this share of the actions stayed within (0.95: the 95th percentile)."""
        if not self.lags:
            return 0.0
        ordered = sorted(self.lags)
        return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


@dataclass
class _Journey:
    """One client's way through the chain, as far as the simulation has come."""

    client: Client
    organisation: str
    trajectory_id: str = ""
    client_ref: str = ""
    opened_at: datetime | None = None
    appointments: dict[int, str] = field(default_factory=dict)
    enrolments: dict[int, str] = field(default_factory=dict)
    registration_minutes: int = 0
    dossier_minutes: int = 0
    closed: bool = False


Step = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class _Action:
    """One thing someone does at a planned moment, once the actions it needs are done."""

    moment: datetime
    name: str
    step: Step
    needs: tuple[str, ...] = ()


# The action running in this task and its planned moment: its first call measures the lag.
_PLANNED: ContextVar[tuple[str, datetime] | None] = ContextVar("planned", default=None)


class OpenedTrajectories:
    """The trajectories trajectory opens, read from its topic by one consumer: a waiting
    resident learns the moment their trajectory opens without anyone polling trajectory."""

    def __init__(self, kafka: KafkaAccess) -> None:
        self.kafka = kafka
        self.opened: dict[str, TrajectoryOpened] = {}
        self.waiting: dict[str, asyncio.Future[TrajectoryOpened]] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read from the topic's current end: everything the year opens comes after it."""
        consumer = AIOKafkaConsumer(
            **self.kafka.client_options(), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = await partitions_of(consumer, [TRAJECTORIES.name])
            if not partitions:
                raise ChainError(f"no topic {TRAJECTORIES.name} on {self.kafka.bootstrap}")
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for partition in partitions:
                await consumer.position(partition)  # fixed now, before the first referral
        except BaseException:
            await consumer.stop()
            raise
        self.consumer = consumer
        self.reader = asyncio.create_task(self._read(consumer))

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()

    @property
    def reading(self) -> bool:
        return self.reader is not None and not self.reader.done()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    self._take(record.value)

    def _take(self, raw: bytes | None) -> None:
        if raw is None or b".TrajectoryOpened." not in raw:
            return
        try:
            event = decode(raw, {TrajectoryOpened.event_type(): TrajectoryOpened}).data
        except UndeliverableEvent:
            return
        assert isinstance(event, TrajectoryOpened)
        self.opened[event.referral_id] = event
        waiter = self.waiting.pop(event.referral_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(event)

    async def wait(self, referral_id: str, timeout: float) -> TrajectoryOpened | None:
        """The referral's TrajectoryOpened, or None after `timeout` real seconds."""
        if referral_id in self.opened:
            return self.opened[referral_id]
        waiter = self.waiting.get(referral_id)
        if waiter is None:
            waiter = self.waiting[referral_id] = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(waiter), max(timeout, 0.0))
        return None


class Year:
    """Runs the planned year against a running chain; `counts` is what it did."""

    def __init__(
        self,
        chain: ChainClient,
        options: YearOptions,
        anchor: float,
        *,
        out: TextIO | None = sys.stdout,
        concurrency: int = 12,
    ) -> None:
        self.chain, self.options = chain, options
        self.clock = options.clock(anchor)
        self.out = out
        self.counts = YearCounts()
        self.plan = plan_year(options.start, options.days, options.clients, options.seed)
        self.counts.planned = len(self.plan)
        self.rng = random.Random(options.seed + 1)
        self.run_id = uuid.uuid4().hex[:8]
        self.calls = asyncio.Semaphore(concurrency)
        self.finished = 0
        self.trajectories = OpenedTrajectories(chain.kafka) if chain.kafka else None

    # ---------------------------------------------------------------- time

    async def until(self, moment: datetime) -> None:
        wait = self.clock.real_seconds(moment - self.clock.now())
        if wait > 0:
            await asyncio.sleep(wait)

    def real_seconds_until(self, moment: datetime) -> float:
        return max(self.clock.real_seconds(moment - self.clock.now()), 0.0)

    @contextlib.asynccontextmanager
    async def _calling(self) -> AsyncIterator[None]:
        """A place among the concurrent calls; the first call of an action notes how late
        it went out against the action's planned moment."""
        async with self.calls:
            planned = _PLANNED.get()
            if planned is not None:
                _PLANNED.set(None)
                lag = max((self.clock.now() - planned[1]).total_seconds() / 3600, 0.0)
                if lag > self.counts.worst_lag_hours:
                    self.counts.latest = planned
                self.counts.lags.append(lag)
            yield

    # ---------------------------------------------------------------- the year

    async def run(self) -> YearCounts:
        if self.trajectories is not None:
            await self.trajectories.start()
        progress = asyncio.create_task(self._progress())
        try:
            await asyncio.gather(*(self._journey(client) for client in self.plan))
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
            if self.trajectories is not None:
                await self.trajectories.stop()
            self._draw_progress(final=True)
        return self.counts

    async def _act(self, feature: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """One call to the chain; a route that does not exist yet is noted, not fatal."""
        if feature in self.counts.missing:
            return None
        try:
            for attempt in range(6):
                try:
                    async with self._calling():
                        return await call()
                except ChainError as error:
                    # 503: the service's transaction did not commit (a write conflict, say)
                    # and it asks to be asked again.
                    if " 503 " not in str(error) or attempt == 5:
                        raise
                await asyncio.sleep(0.2 * (attempt + 1))
            return None
        except ChainError as error:
            if missing_route(error):
                self.counts.missing.add(feature)
            else:
                self._failed(feature, error)
            return None
        except httpx.HTTPError as error:
            self._failed(feature, error)
            return None

    def _failed(self, feature: str, error: Exception) -> None:
        self.counts.failed += 1
        if len(self.counts.failures) < 5:
            self.counts.failures.append(f"{feature}: {type(error).__name__} {str(error)[:300]}")

    async def _journey(self, client: Client) -> None:
        try:
            await self._travel(client)
        finally:
            self.finished += 1

    async def _travel(self, client: Client) -> None:
        await self.until(client.referred_at)
        if self.clock.now() >= self.options.end:
            return
        _PLANNED.set(("referral", client.referred_at))
        body = client.referral(self.rng)
        answer = await self._act(
            "referral",
            lambda: self.chain.refer(
                client.referrer, body, idempotency_key=f"{client.reference}-{self.run_id}"
            ),
        )
        if answer is None:
            return
        if client.organisation is None or answer["status"] == "declined":
            self.counts.declined += 1
            return
        counts = self.counts.of(client.organisation)
        counts.referrals += 1
        counts.crises += client.crisis
        counts.waitlisted += answer["status"] == "waitlisted"
        journey = _Journey(client, client.organisation)
        trajectory = await self._opened(journey, answer["referral_id"])
        if trajectory is None:
            return
        counts.opened += 1
        journey.trajectory_id = trajectory["trajectory_id"]
        journey.client_ref = trajectory["client_ref"]
        # The worker plans from the moment the new trajectory reaches them.
        journey.opened_at = self.clock.now()
        await self._follow(journey)

    async def _follow(self, journey: _Journey) -> None:
        """Every planned action of the journey as its own task at its own moment."""
        actions = sorted(
            (a for a in self._actions(journey) if a.moment < self.options.end),
            key=lambda a: a.moment,
        )
        tasks: dict[str, asyncio.Task[None]] = {}
        for action in actions:
            needs = [tasks[name] for name in action.needs if name in tasks]
            tasks[action.name] = asyncio.create_task(self._perform(action, needs))
        await asyncio.gather(*tasks.values())

    async def _perform(self, action: _Action, needs: list[asyncio.Task[None]]) -> None:
        await self.until(action.moment)
        if needs:
            await asyncio.wait(needs)
        _PLANNED.set((action.name, action.moment))
        await action.step()

    async def _opened(self, journey: _Journey, referral_id: str) -> dict[str, Any] | None:
        """Wait for the trajectory: at once when accepted, after the wait when waitlisted;
        no trajectory when the year ends first."""
        if self.trajectories is not None and self.trajectories.reading:
            opened = await self.trajectories.wait(
                referral_id, self.real_seconds_until(self.options.end)
            )
            if opened is not None:
                return {"trajectory_id": opened.trajectory_id, "client_ref": opened.client_ref}
            if self.trajectories.reading:
                return None
        # Without the topic: ask trajectory once a simulated day (at most twice a second).
        organisation = journey.organisation
        while self.clock.now() < self.options.end:
            found = await self._act(
                "trajectory lookup", lambda: self.chain.find_trajectory(organisation, referral_id)
            )
            if found:
                return found  # type: ignore[no-any-return]
            await asyncio.sleep(max(self.clock.real_seconds(timedelta(days=1)), 0.5))
        return None

    # ---------------------------------------------------------------- what happens, when

    def _actions(self, j: _Journey) -> list[_Action]:
        assert j.opened_at is not None
        t0, client = j.opened_at, j.client
        day = timedelta(days=1) * min(1.0, self.options.days / 365)
        actions: list[_Action] = []
        # Appointments in working hours on working days (a few evening slots for clients who
        # work), in the order planned; the case closes after the last one.
        slots: list[datetime] = []
        for appointment in client.appointments:
            evening = appointment.kind == "follow_up" and client.number % EVENING_CLIENTS == 0
            after = t0 + appointment.offset
            if slots and after <= slots[-1]:
                after = slots[-1] + timedelta(minutes=appointment.minutes)
            slots.append(appointment_slot(after, evening=evening))
        closes = t0 + client.closes_after
        if slots and closes <= slots[-1] + timedelta(hours=2):
            closes = slots[-1] + timedelta(hours=2) + day
        for number, starts in enumerate(slots):
            scheduled = f"schedule {number}"
            actions.append(
                _Action(max(t0, starts - 3 * day), scheduled, self._schedule(j, number, starts))
            )
            actions.append(
                _Action(
                    starts + timedelta(hours=1),
                    f"register {number}",
                    self._register(j, number, starts),
                    needs=(scheduled,),
                )
            )
        for number, message in enumerate(client.messages):
            sent = t0 + message.offset
            actions.append(
                _Action(
                    sent,
                    f"message {number}",
                    self._message(j, message.channel, sent, message.minutes),
                )
            )
            answered = sent + message.answer_after
            if answered < closes:
                actions.append(
                    _Action(
                        answered,
                        f"answer {number}",
                        self._answer(j, message.channel, answered, message.minutes),
                    )
                )
        for number, module in enumerate(client.modules):
            assigned = t0 + module.offset
            actions.append(
                _Action(assigned, f"assign {number}", self._assign(j, number, module.module_id))
            )
            actions.append(
                _Action(
                    assigned + day,
                    f"start {number}",
                    self._start(j, number),
                    needs=(f"assign {number}",),
                )
            )
            if module.completes_after is not None:
                done = assigned + module.completes_after
                if done < closes:
                    actions.append(
                        _Action(
                            done,
                            f"complete {number}",
                            self._complete(j, number),
                            needs=(f"start {number}",),
                        )
                    )
        for number, homework in enumerate(client.homework):
            seen = t0 + homework.offset
            if seen < closes:
                actions.append(
                    _Action(seen, f"homework {number}", self._homework(j, seen, homework.minutes))
                )
        if client.hand_off_at is not None:
            actions.append(_Action(t0 + client.hand_off_at, "hand-off", self._hand_off(j)))
        if client.aftercare:
            actions.append(_Action(closes - day, "aftercare", self._aftercare(j)))
        # Closing comes last: after everything planned before it is done.
        before = tuple(a.name for a in actions if a.moment <= closes)
        actions.append(_Action(closes, "close", self._close(j), needs=before))
        return actions

    def _schedule(self, j: _Journey, number: int, starts: datetime) -> Step:
        appointment = j.client.appointments[number]

        async def schedule() -> None:
            made = await self._act(
                "appointments",
                lambda: self.chain.schedule(
                    j.organisation,
                    j.trajectory_id,
                    starts,
                    kind=appointment.kind,
                    modality=appointment.modality,
                    duration_minutes=appointment.minutes,
                ),
            )
            if made:
                j.appointments[number] = made["appointment_id"]

        return schedule

    def _register(self, j: _Journey, number: int, starts: datetime) -> Step:
        appointment = j.client.appointments[number]

        async def register() -> None:
            appointment_id = j.appointments.get(number)
            if appointment_id is None:
                return
            outcome = "attended" if appointment.attended else "missed"
            done = await self._act(
                "appointments",
                lambda: self.chain.register(
                    j.organisation, j.trajectory_id, appointment_id, outcome
                ),
            )
            if done is None:
                return
            counts = self.counts.of(j.organisation)
            name = f"{appointment.kind}_{outcome}"
            setattr(counts, name, getattr(counts, name) + 1)
            if appointment.attended:
                await self._contact(
                    j,
                    channel=CONTACT_CHANNEL[appointment.modality],
                    minutes=appointment.minutes,
                    occurred_at=starts,
                    # A tenth of workers register the default duration, not the real one.
                    default_duration=self.rng.random() < 0.1,
                )

        return register

    async def _contact(self, j: _Journey, **contact: Any) -> bool:
        made = await self._act(
            "contacts",
            lambda: self.chain.register_contact(j.organisation, j.trajectory_id, **contact),
        )
        if made is None:
            return False
        self.counts.of(j.organisation).contacts += 1
        if contact.get("online_dossier"):
            j.dossier_minutes += contact["minutes"]
        else:
            j.registration_minutes += contact["minutes"]
        return True

    def _message(self, j: _Journey, channel: str, sent: datetime, minutes: int) -> Step:
        async def message() -> None:
            await self._contact(
                j,
                channel=channel,
                direction="client_to_worker",
                minutes=5,
                online_dossier=channel == "dossier_message",
                occurred_at=sent,
            )

        return message

    def _answer(self, j: _Journey, channel: str, answered: datetime, minutes: int) -> Step:
        async def answer() -> None:
            await self._contact(
                j,
                channel=channel,
                direction="worker_to_client",
                minutes=minutes,
                online_dossier=channel == "dossier_message",
                # Mostly on top of the face-to-face contact, now and then instead of it.
                replaces_face_to_face=self.rng.random() < 0.2,
                occurred_at=answered,
            )

        return answer

    def _homework(self, j: _Journey, seen: datetime, minutes: int) -> Step:
        async def homework() -> None:
            # The worker reads what the client handed in and answers it: through the online
            # dossier for blended clients, otherwise on paper, discussed by phone.
            done = await self._contact(
                j,
                channel="homework",
                direction="worker_to_client",
                minutes=minutes,
                online_dossier=j.client.blended,
                occurred_at=seen,
            )
            if done:
                self.counts.of(j.organisation).homework_contacts += 1

        return homework

    def _assign(self, j: _Journey, number: int, module_id: str) -> Step:
        async def assign() -> None:
            made = await self._act(
                "modules",
                lambda: self.chain.assign_module(j.organisation, j.trajectory_id, module_id),
            )
            if made:
                j.enrolments[number] = made["enrolment_id"]
                self.counts.of(j.organisation).modules_assigned += 1

        return assign

    async def _portal(self, j: _Journey, number: int, step: str) -> bool:
        """The client in the portal; learning may not have heard of the module yet."""
        enrolment = j.enrolments.get(number)
        if enrolment is None:
            return False
        call = self.chain.start_module if step == "start" else self.chain.complete_module
        for _ in range(20):
            try:
                async with self._calling():
                    await call(j.organisation, j.client_ref, enrolment)
                return True
            except httpx.HTTPError as error:
                self._failed(f"module {step}", error)
                return False
            except ChainError as error:
                if " 404 " not in str(error) and " 503 " not in str(error):
                    self._failed(f"module {step}", error)
                    return False
                await asyncio.sleep(0.5)
        self._failed(f"module {step}", ChainError("learning never knew the enrolment"))
        return False

    def _start(self, j: _Journey, number: int) -> Step:
        async def start() -> None:
            if await self._portal(j, number, "start"):
                self.counts.of(j.organisation).modules_started += 1

        return start

    def _complete(self, j: _Journey, number: int) -> Step:
        async def complete() -> None:
            if await self._portal(j, number, "complete"):
                self.counts.of(j.organisation).modules_completed += 1

        return complete

    def _hand_off(self, j: _Journey) -> Step:
        async def hand_off() -> None:
            # First the client's consent, recorded at intake; trajectory hears of it through
            # an event, so the hand-off may have to wait a moment for it.
            consent = await self._act(
                "consent for debt counselling",
                lambda: self.chain.grant_consent(
                    j.organisation,
                    j.client_ref,
                    DEBT_COUNSELLING,
                    "debt_counselling",
                    self.clock.now(),
                ),
            )
            if consent is None:
                return
            for attempt in range(60):
                try:
                    async with self._calling():
                        await self.chain.hand_off(j.organisation, j.trajectory_id, DEBT_COUNSELLING)
                except httpx.HTTPError as error:
                    self._failed("debt hand-off", error)
                    return
                except ChainError as error:
                    if missing_route(error):
                        self.counts.missing.add("debt hand-off")
                        return
                    if "has not consented" in str(error) or " 503 " in str(error):
                        await asyncio.sleep(min(0.25 * (attempt + 1), 2.0))
                        continue
                    self._failed("debt hand-off", error)
                    return
                self.counts.of(j.organisation).handoffs += 1
                return
            self._failed("debt hand-off", ChainError("consent never reached trajectory"))

        return hand_off

    def _aftercare(self, j: _Journey) -> Step:
        async def aftercare() -> None:
            done = await self._act(
                "aftercare", lambda: self.chain.start_aftercare(j.organisation, j.trajectory_id)
            )
            if done is not None:
                self.counts.of(j.organisation).aftercare += 1

        return aftercare

    def _close(self, j: _Journey) -> Step:
        async def close() -> None:
            reason = j.client.closure_reason
            done = await self._act(
                "closure",
                lambda: self.chain.close_trajectory(j.organisation, j.trajectory_id, reason),
            )
            if done is None:
                return
            counts = self.counts.of(j.organisation)
            counts.closed += 1
            counts.closed_registration_minutes += j.registration_minutes
            counts.closed_dossier_minutes += j.dossier_minutes
            self.counts.closure_reasons[reason] += 1
            j.closed = True

        return close

    # ---------------------------------------------------------------- the progress bar

    async def _progress(self) -> None:
        while True:
            self._draw_progress()
            await asyncio.sleep(0.5)

    def _draw_progress(self, final: bool = False) -> None:
        if self.out is None:
            return
        now = min(max(self.clock.now(), self.options.start), self.options.end)
        share = (now - self.options.start) / (self.options.end - self.options.start)
        if final:
            share = 1.0
        width = 30
        bar = "#" * int(share * width) + "-" * (width - int(share * width))
        orgs = self.counts.organisations.values()
        lag = self.counts.lags[-1] if self.counts.lags else 0.0
        line = (
            f"\r  [{bar}] {share:4.0%}  {now.astimezone(LOCAL):%d %b %Y}  "
            f"referrals {sum(o.referrals for o in orgs):4d}  "
            f"open {sum(o.opened - o.closed for o in orgs):4d}  "
            f"closed {sum(o.closed for o in orgs):4d}  "
            f"waitlisted {sum(o.waitlisted for o in orgs):3d}  "
            f"behind {lag:5.1f} h"
        )
        print(line, end="\n" if final else "", file=self.out, flush=True)
