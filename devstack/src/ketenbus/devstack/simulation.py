"""Play a planned year through the real services, each action at its simulated moment.

The services and the simulation read the same accelerated clock (ScaledClock: the same start,
anchor and speed), so "three days before the appointment" is three simulated days for
everyone. The simulation only does what people do: referrers refer, creditors send
early-warning signals, workers reach out to the signalled residents, schedule, register and
close, clients work in the portal, the debt-counselling partner answers on its topic. It
counts what it did, by kind and outcome, so the report's figures can be checked against it.
Anything the chain cannot do yet (a route that does not exist) is skipped and named in the
report.

A resident's help is a list of rows (year_actions): each runs at its own simulated moment as
a task of its own, waiting only for the rows it needs, so actions due at the same moment run
side by side and one slow answer does not push the rest of the year back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TextIO, TypeVar
from zoneinfo import ZoneInfo

import httpx
from aiokafka.errors import KafkaError

from ketenbus.contracts.events import PartnerOutcome, PartnerStatus
from ketenbus.devstack.chain_client import ChainClient, ChainError
from ketenbus.devstack.mail_sink import LatestHeaders
from ketenbus.devstack.narration import Narrator, chosen_language
from ketenbus.devstack.opened_trajectories import OpenedTrajectories
from ketenbus.devstack.partners import DebtCounsellingPartner, PartnerTimeout
from ketenbus.devstack.year_actions import (
    Action,
    Key,
    Kind,
    appointment_slots,
    plan_actions,
    signal_actions,
)
from ketenbus.devstack.year_scenario import DEBT_COUNSELLING, Client, plan_year
from ketenbus.kit.clock import ScaledClock

LOCAL = ZoneInfo("Europe/Amsterdam")
CONTACT_CHANNEL = {"face_to_face": "face_to_face", "phone": "phone", "video": "video"}
# Each module's homework step and its self-scan (learning's catalogue).
HOMEWORK_STEP = {
    "grip-op-je-geld": "huiswerk-kasboek",
    "omgaan-met-stress": "huiswerk-wat-helpt",
    "sterker-in-je-netwerk": "huiswerk-een-persoon",
}
SELF_SCAN_STEP = "zelfscan"
SELF_SCAN = ("money", "housing", "health", "social_contacts", "daily_activities", "wellbeing")
T = TypeVar("T")


# Residents times speed that two cores keep up with well enough: 3,000 residents at
# 75,000x ran behind their plan (half the actions some 990 simulated hours late, the chain
# busy throughout) but every action was taken, the figures agreed, and the demo took 8 min
# 44 s; at 130,000x the same year ran so late that 455 outreaches and answers came after
# intake had deleted their signal (six months after it came in). benchmarks/REPORT.md, 7.
REGION_PACE = 3_000 * 75_000


def speed_for(clients: int) -> float:
    """The default speed: 130,000x, slower for a population too large to follow it."""
    return min(YearOptions.speed, REGION_PACE / max(clients, 1))


@dataclass(frozen=True)
class YearOptions:
    start: datetime = datetime(2025, 1, 1, 7, 0, tzinfo=LOCAL)
    days: int = 365
    # Sized to finish in about five minutes on a two-core machine: the year in 243 s (one
    # real second is 36 simulated hours), 300 residents making some 18 actions a second, a
    # third of what the chain answers there before it falls behind (measured: 4 min 52 s,
    # at most 11 simulated hours behind, 0.5 for 95 % of the actions; docs/analytics.md).
    clients: int = 300
    speed: float = 130_000.0
    seed: int = 2025

    @classmethod
    def from_environment(cls) -> YearOptions:
        """KETENBUS_DEMO_DAYS, _CLIENTS, _SPEED, _SEED, _START override the defaults; without
        _SPEED, the speed suits the number of residents (`speed_for`)."""
        env, default = os.environ, cls()
        start = env.get("KETENBUS_DEMO_START")
        clients = int(env.get("KETENBUS_DEMO_CLIENTS", default.clients))
        speed = env.get("KETENBUS_DEMO_SPEED")
        return cls(
            start=datetime.fromisoformat(start) if start else default.start,
            days=int(env.get("KETENBUS_DEMO_DAYS", default.days)),
            clients=clients,
            speed=float(speed) if speed else speed_for(clients),
            seed=int(env.get("KETENBUS_DEMO_SEED", default.seed)),
        )

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def clock(self, anchor: float) -> ScaledClock:
        return ScaledClock(self.start, anchor, self.speed)

    def clock_environment(self, anchor: float) -> dict[str, str]:
        """What every service must be started with to share the simulation's clock."""
        return clock_environment(ScaledClock(self.start, anchor, self.speed))


def clock_environment(clock: ScaledClock) -> dict[str, str]:
    """What a service must be started with to read `clock` (ketenbus.kit.clock.clock_from)."""
    return {
        "KETENBUS_CLOCK_START": clock.start.isoformat(),
        "KETENBUS_CLOCK_ANCHOR": repr(clock.anchor),
        "KETENBUS_CLOCK_SPEED": repr(clock.speed),
    }


class OrganisationCounts(Counter[tuple[str, str]]):
    """What the simulation did at one organisation, by kind and outcome:
    `counts["intake", "missed"]`, `counts["partner", "declined"]`; and the contact minutes
    of the closed cases (what time per case divides): `counts["minutes", "dossier"]`."""


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
    worst_lag_hours: float = 0.0
    latest: tuple[str, datetime] | None = None

    def of(self, organisation: str) -> OrganisationCounts:
        return self.organisations.setdefault(organisation, OrganisationCounts())

    def total(self, kind: str, outcome: str) -> int:
        """Over all organisations."""
        return sum(counts[kind, outcome] for counts in self.organisations.values())

    def note_lag(self, hours: float, planned: tuple[str, datetime]) -> None:
        """An action's first call went out `hours` after its `planned` moment."""
        if hours > self.worst_lag_hours:
            self.worst_lag_hours, self.latest = hours, planned
        self.lags.append(hours)

    def lag_hours(self, share: float) -> float:
        """The lag that this share of the actions stayed within (0.95: the 95th percentile)."""
        if not self.lags:
            return 0.0
        ordered = sorted(self.lags)
        return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def moment_after_signal(planned: datetime, received: datetime, now: datetime) -> datetime:
    """When an outreach or the resident's answer is recorded: as planned, but not after now
    (a late run acts late), and never before intake received the signal. The last rule
    wins: intake stamped its receipt on its own clock, and each process reckons simulated
    time from its own start, so intake's may run ahead of ours (at 130,000x a real
    millisecond is two simulated minutes); `now` first would date the outreach before the
    signal, which intake refuses."""
    return max(min(planned, now), received)


@dataclass
class _Journey:
    """One client's way through the chain, as far as the simulation has come."""

    client: Client
    organisation: str
    contact: dict[str, Any]  # the phone and e-mail address the referrer (or creditor) gave
    referral_id: str = ""
    signal_id: str = ""
    signal_received: datetime | None = None  # intake's moment of arrival
    trajectory_id: str = ""
    client_ref: str = ""
    opened: datetime | None = None  # when the worker started planning: the plan's zero
    slots: list[datetime] = field(default_factory=list)
    appointments: dict[int, str] = field(default_factory=dict)
    enrolments: dict[int, str] = field(default_factory=dict)
    submissions: dict[int, str] = field(default_factory=dict)
    partner_referral_id: str = ""
    registration_minutes: int = 0
    dossier_minutes: int = 0


# The action running in this task and its planned moment: its first call measures the lag.
_PLANNED: ContextVar[tuple[str, datetime] | None] = ContextVar("planned", default=None)


class Year:
    """Runs the planned year against a running chain; `counts` is what it did. `partner`:
    the debt-counselling partner on its Kafka topics (started and stopped by the caller, on
    this year's clock), without which hand-offs go unanswered."""

    def __init__(
        self,
        chain: ChainClient,
        options: YearOptions,
        anchor: float,
        *,
        out: TextIO | None = sys.stdout,
        concurrency: int = 12,
        partner: DebtCounsellingPartner | None = None,
        say: Narrator | None = None,
    ) -> None:
        self.chain, self.options, self.partner = chain, options, partner
        self.say = say or Narrator(chosen_language())
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
        mail = chain.urls.get("mail.dir")
        self.unsubscribe_links = LatestHeaders(mail, "List-Unsubscribe") if mail else None
        self.day = timedelta(days=1) * min(1.0, options.days / 365)
        self.steps: dict[Kind, Callable[[_Journey, int], Awaitable[None]]] = {
            Kind.SIGNAL: self._signal,
            Kind.OUTREACH: self._outreach,
            Kind.SIGNAL_ANSWER: self._signal_answer,
            Kind.SCHEDULE: self._schedule,
            Kind.REGISTER: self._register,
            Kind.MESSAGE: self._message,
            Kind.ANSWER: self._answer,
            Kind.ASSIGN: self._assign,
            Kind.START: self._start,
            Kind.QUESTIONNAIRE: self._questionnaire,
            Kind.SUBMIT: self._submit,
            Kind.HOMEWORK: self._homework,
            Kind.COMPLETE: self._complete,
            Kind.HAND_OFF: self._hand_off,
            Kind.PARTNER_ANSWER: self._partner_answer,
            Kind.PARTNER_STATUS: self._partner_status,
            Kind.PARTNER_COMPLETE: self._partner_complete,
            Kind.WITHDRAW_CONSENT: self._withdraw_consent,
            Kind.OPT_OUT: self._opt_out,
            Kind.AFTERCARE: self._aftercare,
            Kind.CLOSE: self._close,
            Kind.ERASE: self._erase,
        }

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
                self.counts.note_lag(lag, planned)
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

    async def _act(
        self,
        feature: str,
        call: Callable[[], Awaitable[T]],
        *,
        waits_for: Collection[str] = (),
        attempts: int = 6,
        keyed: bool = False,
    ) -> T | None:
        """One call to the chain, asked again while the service answers 503 (its transaction
        did not commit) or a code in `waits_for` (what it has not heard of yet through the
        bus); a route that does not exist yet is noted, not fatal. A `keyed` call (sent with
        an Idempotency-Key) is also asked again when the connection failed: the service may
        have done it, and the key makes the second asking return what the first made."""
        if feature in self.counts.missing:
            return None
        for attempt in range(attempts):
            try:
                async with self._calling():
                    return await call()
            except ChainError as error:
                if error.missing_route:
                    self.counts.missing.add(feature)
                    return None
                if attempt == attempts - 1 or not (error.retryable or error.code in waits_for):
                    self._failed(feature, error)
                    return None
            except httpx.HTTPError as error:
                if attempt == attempts - 1 or not (
                    keyed and isinstance(error, httpx.TransportError)
                ):
                    self._failed(feature, error)
                    return None
            await asyncio.sleep(min(0.25 * (attempt + 1), 2.0))
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
        await self.until(client.arrives_at)
        if self.clock.now() >= self.options.end:
            return
        journey = await (self._signalled(client) if client.signal else self._referred(client))
        if journey is None:
            return
        trajectory = await self._opened(journey, journey.referral_id)
        if trajectory is None:
            return
        self.counts.of(journey.organisation)["trajectory", "opened"] += 1
        journey.trajectory_id = trajectory["trajectory_id"]
        journey.client_ref = trajectory["client_ref"]
        # The worker plans from the moment the new trajectory reaches them.
        await self._follow(journey, self.clock.now())

    async def _referred(self, client: Client) -> _Journey | None:
        """A referrer refers: the journey of a referral in the region."""
        _PLANNED.set(("referral", client.referred_at))
        body = client.referral(self.rng)
        answer = await self._act(
            "referral",
            lambda: self.chain.refer(
                client.referrer, body, idempotency_key=f"{client.reference}-{self.run_id}"
            ),
            keyed=True,
        )
        if answer is None:
            return None
        if client.organisation is None or answer["status"] == "declined":
            self.counts.declined += 1
            return None
        journey = _Journey(client, client.organisation, body["client"])
        self._received(journey, answer["referral_id"], answer["status"])
        return journey

    async def _signalled(self, client: Client) -> _Journey | None:
        """A creditor's signal, the outreach and the answer, each row at its moment: the
        journey goes on when the resident accepted help (a referral)."""
        assert client.organisation is not None  # creditors signal residents of the region
        journey = _Journey(client, client.organisation, {})
        await self._play(journey, signal_actions(client))
        return journey if journey.referral_id else None

    def _received(self, j: _Journey, referral_id: str, state: str) -> None:
        counts = self.counts.of(j.organisation)
        counts["referral", "received"] += 1
        counts["referral", "crisis"] += j.client.crisis
        counts["referral", "waitlisted"] += state == "waitlisted"
        j.referral_id = referral_id

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
                return found
            await asyncio.sleep(max(self.clock.real_seconds(timedelta(days=1)), 0.5))
        return None

    async def _follow(self, j: _Journey, opened: datetime) -> None:
        j.opened, j.slots = opened, appointment_slots(j.client, opened)
        await self._play(j, plan_actions(j.client, opened, self.day))

    async def _play(self, j: _Journey, rows: list[Action]) -> None:
        """Every row of the journey (within the year) as its own task at its own moment."""
        rows = [a for a in rows if a.moment < self.options.end]
        tasks: dict[Key, asyncio.Task[None]] = {}
        for row in rows:  # every task is made before any runs: each finds what it waits for
            tasks[row.key] = asyncio.create_task(self._perform(j, row, tasks))
        await asyncio.gather(*tasks.values())

    async def _perform(
        self, j: _Journey, row: Action, tasks: dict[Key, asyncio.Task[None]]
    ) -> None:
        await self.until(row.moment)
        needs = [tasks[key] for key in row.after if key in tasks]
        if needs:
            await asyncio.wait(needs)
        _PLANNED.set((row.kind.value, row.moment))
        await self.steps[row.kind](j, row.number)

    # ---------------------------------------------------------------- early warning

    async def _signal(self, j: _Journey, _: int) -> None:
        """The creditor reports the resident's arrears; intake routes it to the organisation."""
        assert j.client.signal is not None
        creditor, report = j.client.signal.creditor, j.client.signal_report(self.rng)
        j.contact = report["resident"]
        receipt = await self._act(
            "signals",
            lambda: self.chain.send_signal(
                creditor, report, idempotency_key=f"{j.client.reference}-{self.run_id}"
            ),
            keyed=True,
        )
        if receipt is not None:
            j.signal_id = receipt["signal_id"]
            j.signal_received = datetime.fromisoformat(receipt["received_at"])
            self.counts.of(j.organisation)["signal", "received"] += 1

    def _when_signalled(self, j: _Journey, planned: datetime) -> datetime:
        assert j.signal_received is not None
        return moment_after_signal(planned, j.signal_received, self.clock.now())

    async def _outreach(self, j: _Journey, n: int) -> None:
        assert j.client.signal is not None
        attempt = j.client.signal.outreach[n]
        if not j.signal_id:
            return
        at = self._when_signalled(j, attempt.at)
        done = await self._act(
            "signal outreach",
            lambda: self.chain.record_outreach(
                j.organisation, j.signal_id, attempt.method, attempt.reached, at
            ),
        )
        if done is not None:
            counts = self.counts.of(j.organisation)
            counts["outreach", "attempted"] += 1
            counts["signal", "reached"] += attempt.reached

    async def _signal_answer(self, j: _Journey, _: int) -> None:
        """The resident accepts help (with consent: the signal becomes a referral) or not."""
        signal = j.client.signal
        assert signal is not None and signal.answered_at is not None
        if not j.signal_id:
            return
        accepts, at = bool(signal.accepts), self._when_signalled(j, signal.answered_at)
        answer = await self._act(
            "signal answer",
            lambda: self.chain.answer_signal(j.organisation, j.signal_id, accepts, at),
        )
        if answer is None:
            return
        self.counts.of(j.organisation)["signal", "accepted" if accepts else "declined"] += 1
        if accepts:
            self._received(j, answer["referral_id"], answer["referral_state"])

    # ---------------------------------------------------------------- the worker

    async def _schedule(self, j: _Journey, n: int) -> None:
        appointment = j.client.appointments[n]
        made = await self._act(
            "appointments",
            lambda: self.chain.schedule(
                j.organisation,
                j.trajectory_id,
                j.slots[n],
                kind=appointment.kind,
                modality=appointment.modality,
                duration_minutes=appointment.minutes,
            ),
        )
        if made:
            j.appointments[n] = made["appointment_id"]

    async def _register(self, j: _Journey, n: int) -> None:
        appointment, appointment_id = j.client.appointments[n], j.appointments.get(n)
        if appointment_id is None:
            return
        outcome = "attended" if appointment.attended else "missed"
        done = await self._act(
            "appointments",
            lambda: self.chain.register(j.organisation, j.trajectory_id, appointment_id, outcome),
        )
        if done is None:
            return
        self.counts.of(j.organisation)[appointment.kind, outcome] += 1
        if appointment.attended:
            await self._contact(
                j,
                channel=CONTACT_CHANNEL[appointment.modality],
                minutes=appointment.minutes + appointment.paperwork,
                occurred_at=j.slots[n],
                # A tenth of workers register the default duration, not the real one.
                default_duration=self.rng.random() < 0.1,
            )

    async def _contact(self, j: _Journey, **contact: Any) -> bool:
        made = await self._act(
            "contacts",
            lambda: self.chain.register_contact(j.organisation, j.trajectory_id, **contact),
        )
        if made is None:
            return False
        self.counts.of(j.organisation)["contact", "registered"] += 1
        if contact.get("online_dossier"):
            j.dossier_minutes += contact["minutes"]
        else:
            j.registration_minutes += contact["minutes"]
        return True

    def _planned(self, j: _Journey, offset: timedelta) -> datetime:
        """The moment the plan gave, whenever the call goes out (contacts say when they were)."""
        assert j.opened is not None
        return j.opened + offset

    async def _message(self, j: _Journey, n: int) -> None:
        message = j.client.messages[n]
        await self._contact(
            j,
            channel=message.channel,
            direction="client_to_worker",
            minutes=5,
            online_dossier=message.channel == "dossier_message",
            occurred_at=self._planned(j, message.offset),
        )

    async def _answer(self, j: _Journey, n: int) -> None:
        message = j.client.messages[n]
        await self._contact(
            j,
            channel=message.channel,
            direction="worker_to_client",
            minutes=message.minutes,
            online_dossier=message.channel == "dossier_message",
            # Mostly on top of the face-to-face contact, now and then instead of it.
            replaces_face_to_face=self.rng.random() < 0.2,
            occurred_at=self._planned(j, message.offset + message.answer_after),
        )

    async def _homework(self, j: _Journey, h: int) -> None:
        """The worker reads what the client handed in and answers it: through the online
        dossier for blended clients, otherwise on paper, discussed by phone; a module's
        homework gets written feedback in the portal too."""
        done = await self._contact(
            j,
            channel="homework",
            direction="worker_to_client",
            minutes=j.client.homework[h].minutes,
            online_dossier=j.client.blended,
            occurred_at=self._planned(j, j.client.homework[h].offset),
        )
        if not done:
            return
        counts = self.counts.of(j.organisation)
        counts["homework", "answered"] += 1
        submission = j.submissions.get(h)
        if submission is not None:
            given = await self._act(
                "homework feedback",
                lambda: self.chain.give_feedback(
                    j.organisation, j.trajectory_id, submission, "Goed gedaan, we bespreken het."
                ),
                waits_for={"not_found"},  # trajectory hears of the homework through the bus
                attempts=20,
            )
            counts["homework", "feedback"] += given is not None

    async def _assign(self, j: _Journey, m: int) -> None:
        module_id = j.client.modules[m].module_id
        made = await self._act(
            "modules",
            lambda: self.chain.assign_module(j.organisation, j.trajectory_id, module_id),
        )
        if made:
            j.enrolments[m] = made["enrolment_id"]
            self.counts.of(j.organisation)["module", "assigned"] += 1

    async def _hand_off(self, j: _Journey, _: int) -> None:
        """First the client's consent, recorded at intake; trajectory hears of it through an
        event, so the hand-off may have to wait a moment for it."""
        consent = await self._act(
            "consent for debt counselling",
            lambda: self.chain.grant_consent(
                j.organisation, j.client_ref, DEBT_COUNSELLING, "debt_counselling", self.clock.now()
            ),
        )
        if consent is None:
            return
        requested = await self._act(
            "debt hand-off",
            lambda: self.chain.hand_off(j.organisation, j.trajectory_id, DEBT_COUNSELLING),
            waits_for={"no_consent"},
            attempts=60,
        )
        if requested is not None:
            j.partner_referral_id = requested["partner_referral_id"]
            self.counts.of(j.organisation)["hand_off", "requested"] += 1

    async def _aftercare(self, j: _Journey, _: int) -> None:
        done = await self._act(
            "aftercare", lambda: self.chain.start_aftercare(j.organisation, j.trajectory_id)
        )
        if done is not None:
            self.counts.of(j.organisation)["aftercare", "started"] += 1

    async def _close(self, j: _Journey, _: int) -> None:
        reason = j.client.closure_reason
        done = await self._act(
            "closure", lambda: self.chain.close_trajectory(j.organisation, j.trajectory_id, reason)
        )
        if done is None:
            return
        counts = self.counts.of(j.organisation)
        counts["trajectory", "closed"] += 1
        counts["minutes", "registration"] += j.registration_minutes
        counts["minutes", "dossier"] += j.dossier_minutes
        self.counts.closure_reasons[reason] += 1

    async def _withdraw_consent(self, j: _Journey, _: int) -> None:
        """The client takes a consent back (no more reminders; no debt counselling after
        all): the worker records it at intake."""
        assert j.client.withdraws_consent is not None
        purpose = j.client.withdraws_consent[1]
        consents = await self._act(
            "consent withdrawal", lambda: self.chain.consents(j.organisation, j.client_ref)
        )
        given = [c for c in consents or () if c["purpose"] == purpose and not c["withdrawn_at"]]
        for consent_id in (c["consent_id"] for c in given):
            done = await self._act(
                "consent withdrawal",
                partial(self.chain.withdraw_consent, j.organisation, j.client_ref, consent_id),
            )
            self.counts.of(j.organisation)["consent", "withdrawn"] += done is not None

    async def _erase(self, j: _Journey, _: int) -> None:
        done = await self._act(
            "erasure", lambda: self.chain.erase_client(j.organisation, j.client_ref)
        )
        self.counts.of(j.organisation)["erasure", "requested"] += done is not None

    # ---------------------------------------------------------------- the client

    async def _portal(
        self, j: _Journey, m: int, feature: str, call: Callable[[str], Awaitable[T]]
    ) -> T | None:
        """The client in the portal; learning may not have heard of the module yet."""
        enrolment = j.enrolments.get(m)
        if enrolment is None:
            return None
        return await self._act(
            feature, lambda: call(enrolment), waits_for={"not_found"}, attempts=20
        )

    async def _start(self, j: _Journey, m: int) -> None:
        done = await self._portal(
            j, m, "module start", lambda e: self.chain.start_module(j.organisation, j.client_ref, e)
        )
        self.counts.of(j.organisation)["module", "started"] += done is not None

    async def _complete(self, j: _Journey, m: int) -> None:
        done = await self._portal(
            j,
            m,
            "module complete",
            lambda e: self.chain.complete_module(j.organisation, j.client_ref, e),
        )
        self.counts.of(j.organisation)["module", "completed"] += done is not None

    async def _questionnaire(self, j: _Journey, m: int) -> None:
        scores = {area: self.rng.randint(3, 8) for area in SELF_SCAN}
        done = await self._portal(
            j,
            m,
            "questionnaire",
            lambda e: self.chain.answer_questionnaire(
                j.organisation, j.client_ref, e, SELF_SCAN_STEP, scores
            ),
        )
        self.counts.of(j.organisation)["questionnaire", "completed"] += done is not None

    async def _submit(self, j: _Journey, h: int) -> None:
        module = j.client.homework[h].module
        assert module is not None
        step = HOMEWORK_STEP[j.client.modules[module].module_id]
        handed_in = await self._portal(
            j,
            module,
            "homework",
            lambda e: self.chain.submit_homework(
                j.organisation, j.client_ref, e, step, "Dit is me opgevallen."
            ),
        )
        if handed_in is not None:
            j.submissions[h] = handed_in["submission_id"]
            self.counts.of(j.organisation)["homework", "submitted"] += 1

    async def _opt_out(self, j: _Journey, _: int) -> None:
        """No more messages: STOP in answer to an SMS, or the link in a reminder mail."""
        counts = self.counts.of(j.organisation)
        if j.client.preferred_channel == "sms":
            answer = await self._act(
                "opt-out", lambda: self.chain.sms_reply(j.organisation, j.contact["phone"], "STOP")
            )
            counts["opt_out", "stop_reply"] += bool(answer and answer["opted_out"])
            return
        # The link of the latest mail; with none yet, the client uses the next one.
        for _ in range(7):
            link = await asyncio.to_thread(self._unsubscribe_link, j.contact.get("email", ""))
            if link is not None:
                break
            await asyncio.sleep(self.clock.real_seconds(timedelta(days=1)))
        else:
            counts["opt_out", "no mail"] += 1
            return
        followed = await self._act("opt-out", lambda: self.chain.follow_link(link))
        counts["opt_out", "link"] += followed is not None

    def _unsubscribe_link(self, address: str) -> str | None:
        """The opt-out link of the latest mail to `address` in the mail sink."""
        link = self.unsubscribe_links.of(address) if self.unsubscribe_links and address else None
        return link.strip("<>") if link else None

    # ---------------------------------------------------------------- the partner

    async def _partner_answer(self, j: _Journey, _: int) -> None:
        """The debt-counselling partner takes the request from its topic, and accepts or
        declines it."""
        course = j.client.partner
        if self.partner is None or course is None or not j.partner_referral_id:
            return
        try:
            await self.partner.request(j.partner_referral_id, timeout=60)
        except PartnerTimeout as error:
            self._failed("partner", error)
            return
        if course.accepts:
            await self._partner_sends(j, "accepted", self.partner.accept_request)
        else:
            await self._partner_sends(
                j, "declined", partial(self.partner.decline, reason="buiten onze doelgroep")
            )

    async def _partner_status(self, j: _Journey, _: int) -> None:
        if self._partner_goes_on(j):
            status = PartnerStatus.ARRANGEMENT_RUNNING
            await self._partner_sends(j, "status", partial(self._partner().report, status=status))

    async def _partner_complete(self, j: _Journey, _: int) -> None:
        if self._partner_goes_on(j):
            outcome = PartnerOutcome.ARRANGEMENT_COMPLETED
            complete = partial(self._partner().complete, outcome=outcome)
            await self._partner_sends(j, "completed", complete)

    def _partner(self) -> DebtCounsellingPartner:
        assert self.partner is not None
        return self.partner

    def _partner_goes_on(self, j: _Journey) -> bool:
        """Unless the hand-off was withdrawn (consent taken back, the client erased): then
        the partner has stopped."""
        hand_off = self.partner.hand_offs.get(j.partner_referral_id) if self.partner else None
        return hand_off is not None and not hand_off.withdrawn

    async def _partner_sends(
        self, j: _Journey, outcome: str, send: Callable[[str], Awaitable[None]]
    ) -> None:
        """One message of the partner on its inbound topic, about this journey's hand-off."""
        try:
            await send(j.partner_referral_id)
        except KafkaError as error:
            self._failed("partner", error)
            return
        self.counts.of(j.organisation)["partner", outcome] += 1

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
        total = self.counts.total
        lag = self.counts.lags[-1] if self.counts.lags else 0.0
        line = self.say(
            "progress",
            bar=bar,
            share=self.say.percent(share),
            day=f"{now.astimezone(LOCAL):%Y-%m-%d}",  # the same in either language
            referred=total("referral", "received"),
            open=total("trajectory", "opened") - total("trajectory", "closed"),
            closed=total("trajectory", "closed"),
            waitlisted=total("referral", "waitlisted"),
            behind=self.say.number(lag, 1),
        )
        print(f"\r  {line}", end="\n" if final else "", file=self.out, flush=True)
