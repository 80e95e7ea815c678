"""A realistic year in the chain, planned up front: who is referred when, by whom, about
what, and how each person's help goes. Pure and seeded, so a run can be repeated exactly.

The rates come from the sector's reports (see DOMAIN.md): no-shows of 20-30 %, far more at
debt intakes; about 60 % of self-help modules completed; a few crises; part of the debt
cases handed to debt counselling; online contact mostly added on top of face-to-face contact
(which is why blended cases take more hours and more days). Waiting lists are not planned:
intake puts people on them when an organisation's caseload is full.

Some residents come in by an early-warning signal of a creditor (docs/signals.md): the
organisation reaches out, and only those who accept help are referred; the others' signals
are declined, never reached, or (a few) never followed up in time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ketenbus.devstack.working_hours import appointment_slot

# Referrers of the local chain and what kind of referrer each is (see devstack/access.py).
GPS = ("huisarts-de-linde", "huisarts-oosterpoort")
MUNICIPALITY = "gemeente-utrecht"
DEBT_COUNSELLING = "schuldhulp-midden"
# Postcode areas each welfare organisation serves (intake's region table routes them).
AREAS: dict[str, tuple[str, ...]] = {
    "welzijn-utrecht": ("3511", "3514", "3521", "3531", "3544", "3561", "3571", "3582", "3603"),
    "welzijn-amersfoort": ("3811", "3813", "3815", "3822", "3825", "3831"),
    "welzijn-heuvelrug": ("3701", "3703", "3705", "3941"),
}
TOWNS = {
    "welzijn-utrecht": "Utrecht",
    "welzijn-amersfoort": "Amersfoort",
    "welzijn-heuvelrug": "Zeist",
}
SHARE = {"welzijn-utrecht": 0.5, "welzijn-amersfoort": 0.3, "welzijn-heuvelrug": 0.2}
# Trajectories each organisation can run at once for every 100 residents the year refers
# (intake ships 60, 30 and 20 for a region of 300): beyond it intake waitlists, so a smaller
# demo year has organisations of its size and still meets waiting lists.
CASELOAD_PER_100 = {"welzijn-utrecht": 20, "welzijn-amersfoort": 10, "welzijn-heuvelrug": 7}
OUTSIDE_AREAS = ("1011", "6511")  # Amsterdam, Nijmegen: declined with a redirect
MODULES = ("grip-op-je-geld", "omgaan-met-stress", "sterker-in-je-netwerk")
FIRST_NAMES = ("Sanne", "Daan", "Fatima", "Mohammed", "Lotte", "Kees", "Anouk", "Yusuf", "Ilse")
LAST_NAMES = ("de Vries", "Jansen", "El Amrani", "Bakker", "Yilmaz", "Visser", "Smit", "Bos")

# Referrer type -> share of the year's residents ("early_warning": those a creditor's signal
# is about; only those who accept help become referrals of that type).
REFERRER_MIX = {
    "gp": 0.30,
    "self": 0.25,
    "municipality": 0.12,
    "early_warning": 0.15,
    "network": 0.10,
    "school": 0.04,
    "outreach": 0.04,
}
REFERRALS_ONLY = {kind: share for kind, share in REFERRER_MIX.items() if kind != "early_warning"}
TOPIC_MIX = {
    "debts_material": 0.38,
    "psychosocial": 0.22,
    "relationships": 0.12,
    "parenting": 0.10,
    "loneliness": 0.12,
    "other": 0.06,
}
HOMEWORK_WITHOUT_MODULE = 0.3  # blended clients given a worksheet between appointments
NO_SHOW_INTAKE = 0.25
NO_SHOW_DEBT_INTAKE = 0.45
NO_SHOW_FOLLOW_UP = 0.20
MODULE_COMPLETION = 0.60
CRISIS = 0.05
DEBT_HAND_OFF = 0.45
OUTSIDE_REGION = 0.02
# The online dossier is used in roughly 4-25 % of closed cases (DOMAIN.md, magnitudes).
BLENDED = 0.2
# The debt-counselling partner declines a few hand-offs (not its kind of case, say).
PARTNER_DECLINES = 0.2
# A few residents change their mind about the chain (at least one of each in any year):
# consent withdrawn (for reminders; for debt counselling once the partner has started), no
# more messages (STOP by SMS, the link in an e-mail), their data erased after closure.
WITHDRAWS_CONSENT = 0.03
OPTS_OUT = 0.03  # by each route
ERASURE = 0.03
SMS_PREFERRED = 0.3

# Early-warning signals: the creditors of access.CREDITORS, their kind and their share of the
# signals (rent and energy arrears most), and the arrears they report (euros, from-to).
CREDITORS = {
    "woonstichting-domstad": ("housing", 0.35, (450, 3200)),
    "energie-stroomlijn": ("energy", 0.30, (180, 1400)),
    "waterbedrijf-vallei": ("water", 0.15, (60, 400)),
    "zorgverzekeraar-zuid": ("health_insurance", 0.20, (250, 1200)),
}
END_OF_SUPPLY = 0.3  # of energy signals: supply ends 20 working days after the notice
SIGNAL_FORGOTTEN = 0.05  # no outreach at all: intake flags it once the window passed
SIGNAL_NEVER_REACHED = 0.25  # of those followed up: three attempts, no answer
SIGNAL_ACCEPTS = 0.75  # of those reached; the others decline help
OUTREACH_METHODS = ("letter", "phone", "home_visit")  # in the order they are tried
SIGNAL_OUTCOMES = {
    "forgotten": SIGNAL_FORGOTTEN,
    "not_reached": (1 - SIGNAL_FORGOTTEN) * SIGNAL_NEVER_REACHED,
    "accepted": (1 - SIGNAL_FORGOTTEN) * (1 - SIGNAL_NEVER_REACHED) * SIGNAL_ACCEPTS,
    "declined": (1 - SIGNAL_FORGOTTEN) * (1 - SIGNAL_NEVER_REACHED) * (1 - SIGNAL_ACCEPTS),
}


@dataclass(frozen=True)
class Appointment:
    offset: timedelta  # from the trajectory's opening
    kind: str  # intake | follow_up
    modality: str
    attended: bool
    minutes: int
    # Registered on top of the meeting itself: preparing it, the report, the calls it brings
    # (to creditors in a debt case). With it time per case lands in the sector's 8-14 h.
    paperwork: int = 0


@dataclass(frozen=True)
class Message:
    """A client's message in the online dossier (or a chat) and the worker's answer."""

    offset: timedelta
    channel: str  # dossier_message | chat
    answer_after: timedelta
    minutes: int


@dataclass(frozen=True)
class Module:
    offset: timedelta
    module_id: str
    completes_after: timedelta | None  # None: the client stops (drop-out)
    questionnaire_after: timedelta | None = None  # the module's self-scan, from its start


@dataclass(frozen=True)
class Homework:
    """The worker reads what the client handed in (a module's exercise, a worksheet) and
    answers it: a contact of its own, on the channel "homework". A module's homework is
    handed in through the portal first, and the worker's answer goes back as feedback."""

    offset: timedelta
    minutes: int
    module: int | None = None  # which of the client's modules; None: a worksheet on paper


@dataclass(frozen=True)
class PartnerCourse:
    """How the debt-counselling partner takes a hand-off, counted from the request: it
    answers within days, reports a status within weeks, completes within months."""

    answers_after: timedelta
    accepts: bool
    status_after: timedelta
    completes_after: timedelta


@dataclass(frozen=True)
class Outreach:
    at: datetime
    method: str  # letter | phone | home_visit
    reached: bool


@dataclass(frozen=True)
class SignalCourse:
    """A creditor's signal about the resident and what follows: the organisation's attempts
    to reach them (none: never followed up), and their answer once reached."""

    sent_at: datetime
    creditor: str  # organisation id (access.CREDITORS)
    creditor_kind: str
    arrears: Decimal
    end_of_supply: bool  # energy only: a notice that supply ends
    outreach: tuple[Outreach, ...] = ()
    accepts: bool | None = None  # None: never reached
    answered_at: datetime | None = None


@dataclass
class Client:
    number: int
    organisation: str | None  # None: outside the region
    referred_at: datetime
    referrer: str  # organisation id of the referrer
    referrer_type: str
    topic: str
    postcode: str
    crisis: bool
    blended: bool
    appointments: list[Appointment] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    homework: list[Homework] = field(default_factory=list)
    hand_off_at: timedelta | None = None
    partner: PartnerCourse | None = None
    closes_after: timedelta = timedelta(days=120)
    closure_reason: str = "goal_reached"
    aftercare: bool = False
    preferred_channel: str = "email"
    # When the client withdraws a consent, and its purpose (reminders, debt_counselling).
    withdraws_consent: tuple[timedelta, str] | None = None
    opts_out_at: timedelta | None = None  # by STOP on SMS, by the e-mail's link otherwise
    erases: bool = False  # asks for erasure once the case is closed
    # An early-warning client: referred (at `referred_at`) only when they accept help.
    signal: SignalCourse | None = None

    @property
    def referred(self) -> bool:
        return self.signal is None or bool(self.signal.accepts)

    @property
    def arrives_at(self) -> datetime:
        """When the chain first hears of them: by their signal, or by their referral."""
        return self.referred_at if self.signal is None else self.signal.sent_at

    @property
    def reference(self) -> str:
        return f"SIM-{self.referred_at:%Y}-{self.number:05d}"

    def person(self, rng: random.Random) -> dict[str, object]:
        """Who the resident is and how to reach them (invented): an e-mail address only for
        those who prefer e-mail, so intake reaches the others by SMS. Each resident is born
        on a day of their own (a prime step through 55 years meets each day once): intake
        knows a person by name and date of birth, and two invented residents who drew both
        alike were one person to it (a second referral linked to the first, and the
        simulation counting a waitlisting the chain rightly did not)."""
        born = datetime(1950, 1, 1) + timedelta(days=(self.number * 7_919) % (365 * 55))
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        person: dict[str, object] = {
            "name": name,
            "date_of_birth": born.date().isoformat(),
            "postcode": f"{self.postcode} {rng.choice('ABCDEFGHJK')}{rng.choice('ABCDEFGHJK')}",
            "language": "nl" if rng.random() < 0.9 else "en",
        }
        if self.preferred_channel == "email":
            person["email"] = f"client{self.number}@example.org"
        person["phone"] = f"06{rng.randrange(10_000_000, 99_999_999)}"
        return person

    def referral(self, rng: random.Random) -> dict[str, object]:
        """What the referrer sends to intake's front door."""
        client = self.person(rng) | {"preferred_channel": self.preferred_channel}
        return {
            "referrer_type": self.referrer_type,
            "referrer_reference": self.reference,
            "topic": self.topic,
            "urgency": {
                "threatened_eviction": self.crisis and self.topic == "debts_material",
                "disconnection": self.crisis and self.topic != "debts_material",
            },
            "client": client,
            "consent": {
                "given_by": "client",
                "purposes": ["referral_feedback", "reminders"],
                "granted_at": self.referred_at.isoformat(),
            },
        }

    def signal_report(self, rng: random.Random) -> dict[str, Any]:
        """What the creditor sends to intake: the arrears, and who the resident is."""
        signal = self.signal
        assert signal is not None and self.organisation is not None
        resident = self.person(rng) | {
            "street": f"Dorpsstraat {rng.randint(1, 180)}",
            "town": TOWNS[self.organisation],
        }
        report: dict[str, Any] = {
            "creditor_kind": signal.creditor_kind,
            "arrears_amount": str(signal.arrears),
            # The day the creditor's own collection steps ended: a little before it reports.
            "signal_date": (signal.sent_at - timedelta(days=rng.randint(1, 10))).date().isoformat(),
            "customer_number": f"K-{rng.randrange(10**7, 10**8)}",
            "resident": resident,
        }
        if signal.end_of_supply:  # supply ends 20 working days after the notice
            report["end_of_supply_on"] = (signal.sent_at + timedelta(days=28)).date().isoformat()
        return report


def caseloads(clients: int) -> dict[str, int]:
    """The caseload of each organisation for a year of `clients` residents."""
    return {o: max(2, round(n * clients / 100)) for o, n in CASELOAD_PER_100.items()}


def _pick(rng: random.Random, mix: dict[str, float]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def _referrer(rng: random.Random, kind: str, organisation: str | None) -> str:
    if kind == "gp":
        return rng.choice(GPS)
    if kind in ("municipality", "early_warning", "outreach"):
        return MUNICIPALITY
    return organisation or "welzijn-utrecht"  # self, network, school: through the front door


def plan_year(start: datetime, days: int, clients: int, seed: int = 2025) -> list[Client]:
    """Everyone referred in a year of `days` days: referrals spread over the first 85 % of the
    period (later ones would not get far), each with the course their help will take; and
    the residents a creditor's signal is about, of whom those who accept help are referred."""
    rng = random.Random(seed)
    # The signals' course has a random stream of its own: the rest of the year stays as drawn.
    signals = random.Random(f"{seed}-signals")
    window = timedelta(days=days * 0.85)
    planned = []
    for number in range(1, clients + 1):
        referred_at = start + timedelta(seconds=rng.uniform(0, window.total_seconds()))
        outside = rng.random() < OUTSIDE_REGION or number == 1  # one in any year
        organisation = None if outside else _pick(rng, SHARE)
        postcode = rng.choice(OUTSIDE_AREAS if organisation is None else AREAS[organisation])
        # A creditor signals to the resident's own municipality: only residents of the region.
        kind = _pick(rng, REFERRER_MIX if organisation else REFERRALS_ONLY)
        topic = "debts_material" if kind == "early_warning" else _pick(rng, TOPIC_MIX)
        client = Client(
            number=number,
            organisation=organisation,
            referred_at=referred_at.replace(microsecond=0),
            referrer=_referrer(rng, kind, organisation),
            referrer_type=kind,
            topic=topic,
            postcode=postcode,
            crisis=rng.random() < CRISIS,
            blended=rng.random() < BLENDED,
            preferred_channel="sms" if rng.random() < SMS_PREFERRED else "email",
        )
        if kind == "early_warning":
            _plan_signal(signals, client)
        _plan_help(rng, client, days)  # for a signal: the help they get if they accept it
        planned.append(client)
    _plan_signal_outcomes(signals, [c for c in planned if c.signal is not None])
    _plan_changes_of_mind(rng, planned, start + timedelta(days=days * 0.85))
    return sorted(planned, key=lambda c: c.referred_at)


def _plan_signal(rng: random.Random, client: Client) -> None:
    """The creditor's signal arrives at the client's planned moment; an end of supply makes
    it a crisis."""
    creditor = rng.choices(list(CREDITORS), weights=[c[1] for c in CREDITORS.values()])[0]
    kind, _, (low, high) = CREDITORS[creditor]
    end_of_supply = kind == "energy" and rng.random() < END_OF_SUPPLY
    arrears = Decimal(rng.randint(low * 100, high * 100)) / 100
    client.signal = SignalCourse(client.referred_at, creditor, kind, arrears, end_of_supply)
    client.crisis = end_of_supply
    _follow_up(rng, client, _pick(rng, SIGNAL_OUTCOMES))


def _follow_up(rng: random.Random, client: Client, outcome: str, reaching: int = 0) -> None:
    """The organisation's attempts, a few days apart in working hours (a letter first; a call
    when supply is about to end) until one reaches the resident or three did not; reached,
    they answer within days. Accepting, they are referred at that moment."""
    signal = client.signal
    assert signal is not None
    client.referred_at = signal.sent_at
    if outcome == "forgotten":
        client.signal = replace(signal, outreach=(), accepts=None, answered_at=None)
        return
    methods = ("phone", "home_visit", "home_visit") if signal.end_of_supply else OUTREACH_METHODS
    if not reaching:
        reaching = 0 if outcome == "not_reached" else rng.choice((1, 1, 2, 2, 3))
    first = timedelta(days=rng.uniform(0.5, 2) if signal.end_of_supply else rng.uniform(2, 7))
    attempts: list[Outreach] = []
    for n in range(1, (reaching or 3) + 1):
        after = attempts[-1].at + timedelta(days=rng.uniform(3, 7)) if attempts else None
        at = appointment_slot(after or signal.sent_at + first)
        attempts.append(Outreach(at, methods[n - 1], reached=n == reaching))
    answered = None
    if reaching:  # at the contact itself, or after thinking it over
        days = rng.choice((0, 0, 1, 3))
        answered = appointment_slot(at + timedelta(days=days)) if days else at
    client.signal = replace(
        signal,
        outreach=tuple(attempts),
        accepts=None if answered is None else outcome == "accepted",
        answered_at=answered,
    )
    if outcome == "accepted":
        assert answered is not None
        client.referred_at = answered


def _plan_signal_outcomes(rng: random.Random, signalled: list[Client]) -> None:
    """Every outcome that shows in the figures at least once in any year with three signals,
    on its earliest ones (a short year sees them too): the first is never followed up (its
    window is the longest wait), the second accepted, the third declined, both reached at the
    first attempt."""
    earliest = sorted(signalled, key=lambda c: c.arrives_at)
    for client, outcome in zip(earliest, ("forgotten", "accepted", "declined"), strict=False):
        _follow_up(rng, client, outcome, reaching=1)


def _plan_changes_of_mind(rng: random.Random, planned: list[Client], by: datetime) -> None:
    """A few residents who came to their intake change their mind, each about one thing, at
    least one of each kind in any year (and `by` then, so a short year sees them too); one
    debt hand-off is declined by the partner."""
    engaged = [
        c
        for c in planned
        if c.organisation and c.referred and c.appointments[-1].kind == "follow_up"
    ]
    rng.shuffle(engaged)

    def few(
        rate: float, when: Callable[[Client], timedelta], channel: str = ""
    ) -> list[tuple[Client, timedelta]]:
        chosen = [(c, when(c)) for c in engaged if channel in ("", c.preferred_channel)]
        chosen = [(c, at) for c, at in chosen if c.referred_at + at < by]
        # The first of each kind is the year's earliest (a short year, or one with waiting
        # lists, still sees it); the others fall anywhere.
        earliest = min(chosen, key=lambda c: c[0].referred_at + c[1], default=None)
        if earliest is not None:
            chosen.remove(earliest)
            chosen.insert(0, earliest)
        chosen = chosen[: max(1, round(rate * len(planned)))]
        for client, _ in chosen:
            engaged.remove(client)
        return chosen

    def during(early: float, late: float) -> Callable[[Client], timedelta]:
        def at(client: Client) -> timedelta:
            first, last = client.appointments[0].offset, client.appointments[-1].offset
            return first + (last - first) * rng.uniform(early, late)

        return at

    by_referral = sorted(planned, key=lambda c: c.referred_at)
    # The partner declines the second hand-off of the year (the first goes all the way).
    courses = [(c, c.partner) for c in by_referral if c.referred and c.partner is not None]
    if len(courses) > 1:
        second, course = courses[1]
        second.partner = replace(course, accepts=False)
    # One accepted hand-off (not the first) the client calls off before the partner reports:
    # the third of the year, when there is one.
    accepted = [c for c in by_referral if c in engaged and c.partner and c.partner.accepts]
    if len(accepted) > 1:
        calls_off = accepted[1]
        assert calls_off.hand_off_at is not None and calls_off.partner is not None
        engaged.remove(calls_off)
        answered = calls_off.hand_off_at + calls_off.partner.answers_after
        calls_off.withdraws_consent = (
            answered + calls_off.partner.status_after / 2,
            "debt_counselling",
        )
    for client, at in few(WITHDRAWS_CONSENT, during(0.2, 0.8)):
        client.withdraws_consent = (at, "reminders")
    for channel in ("sms", "email"):
        for client, at in few(OPTS_OUT, during(0.3, 0.9), channel):
            client.opts_out_at = at
    for client, _ in few(ERASURE, lambda c: c.closes_after + c.closes_after / 10):
        client.erases = True


def _plan_help(rng: random.Random, client: Client, days: int) -> None:
    # Short years (tests) compress the course of help with them.
    scale = min(1.0, days / 365)
    day = timedelta(days=1) * scale
    debt = client.topic == "debts_material"
    at = (timedelta(days=1) if client.crisis else timedelta(days=rng.uniform(3, 10))) * scale
    # The intake: a missed intake gets another date; after two misses the case closes.
    misses = 0
    while True:
        no_show = NO_SHOW_DEBT_INTAKE if debt else NO_SHOW_INTAKE
        attended = rng.random() >= no_show
        client.appointments.append(
            Appointment(
                at,
                "intake",
                "face_to_face",
                attended,
                rng.choice((60, 75, 90)),
                rng.randint(25, 45),
            )
        )
        if attended:
            break
        misses += 1
        if misses == 2:
            client.closes_after = at + 14 * day
            client.closure_reason = "no_contact"
            return
        at += rng.uniform(5, 9) * day
    # Guidance: follow-ups every three to four weeks for four to six months (the sector's
    # 125-175 days); blended clients get online contact on top, which (as the sector found)
    # makes their help longer rather than shorter.
    follow_ups = rng.randint(4, 6) + (1 if client.blended else 0)
    for _ in range(follow_ups):
        at += rng.uniform(18, 30) * day
        modality = rng.choices(["face_to_face", "phone", "video"], weights=[6, 2, 1])[0]
        attended = rng.random() >= NO_SHOW_FOLLOW_UP
        paperwork = rng.randint(15, 40) + (rng.randint(30, 60) if debt else 0)
        client.appointments.append(
            Appointment(
                at, "follow_up", modality, attended, rng.choice((45, 60, 60, 75, 90)), paperwork
            )
        )
    if client.blended:
        for _ in range(rng.randint(2, 6)):
            client.messages.append(
                Message(
                    offset=at * rng.uniform(0.15, 0.95),
                    channel=rng.choice(("dossier_message", "dossier_message", "chat")),
                    answer_after=timedelta(hours=rng.choice((2, 5, 20, 26, 50, 70))) * scale,
                    minutes=rng.choice((5, 10, 15, 20)),
                )
            )
    intake = client.appointments[-follow_ups - 1].offset
    if rng.random() < 0.5:
        completes = rng.random() < MODULE_COMPLETION
        client.modules.append(
            Module(
                offset=intake + 2 * day,
                module_id=rng.choice(MODULES),
                completes_after=rng.uniform(14, 40) * day if completes else None,
                questionnaire_after=rng.uniform(1, 6) * day if rng.random() < 0.7 else None,
            )
        )
    _plan_homework(rng, client, at, day)
    if debt and rng.random() < DEBT_HAND_OFF:
        client.hand_off_at = intake + 5 * day
        client.partner = PartnerCourse(
            answers_after=rng.uniform(1, 7) * day,
            accepts=rng.random() >= PARTNER_DECLINES,
            status_after=rng.uniform(20, 50) * day,
            completes_after=rng.uniform(90, 200) * day,
        )
    client.closes_after = at + rng.uniform(7, 21) * day
    client.closure_reason = rng.choices(
        ["goal_reached", "client_stopped", "referred_on", "no_contact"], weights=[70, 12, 8, 10]
    )[0]
    client.aftercare = debt and rng.random() < 0.4


def _plan_homework(rng: random.Random, client: Client, last: timedelta, day: timedelta) -> None:
    """Homework the worker reads and answers: the exercises of a self-help module (one to
    three while the client works on it; at most one when they drop out), and now and then a
    worksheet between appointments for a blended client without a module."""
    for module in client.modules:
        span = module.completes_after or rng.uniform(7, 20) * day
        handed_in = rng.randint(1, 3) if module.completes_after else rng.randint(0, 1)
        for _ in range(handed_in):
            client.homework.append(
                Homework(
                    module.offset + span * rng.uniform(0.2, 0.9),
                    rng.choice((10, 15, 20)),
                    module=client.modules.index(module),
                )
            )
    if client.blended and not client.modules and rng.random() < HOMEWORK_WITHOUT_MODULE:
        intake = next(a.offset for a in client.appointments if a.attended)
        for _ in range(rng.randint(1, 2)):
            client.homework.append(
                Homework(intake + (last - intake) * rng.uniform(0.2, 0.9), rng.choice((10, 15)))
            )
