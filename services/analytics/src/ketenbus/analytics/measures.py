"""The steering figures the sector asks for, computed from projected facts: pure, no I/O.

Grouped by organisation x funder x work type (werksoort) x question topic x online dossier
used x period. The topic splits a work type into "of which" parts: the sector shows
material/debt problems as the cases of general social work whose question was about money
and debts, not as a work type of its own.
Each fact counts in the period of its own moment:
- a closed case (and its time, contacts and doorlooptijd) in the period it was closed;
- an appointment (no-shows) in the period it was held;
- a module in the period it was started (completion and drop-out of that cohort);
- a waiting time in the period of the first contact; a referral when it was received;
- a client's message (response time) when it was sent.
A case counts as "online dossier used" when it was closed with that flag or when any of its
contacts went through the online dossier; facts without a case of their own (a self-chosen
module while waiting) take the dimensions of the client's case or referral, else "unknown".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ketenbus.analytics.facts import UNKNOWN, Appointment, Case, Contact, Facts, Referral
from ketenbus.analytics.periods import LOCAL, PeriodKind, period_of

ALL = "all"
DIMENSIONS = ("funder", "work_type", "topic", "online_dossier")
# What a benchmark snapshot is cut by: no topic (the benchmark compares work types), and no
# funder (a funder maps to one organisation, so it would name a pseudonymised one).
BENCHMARK_DIMENSIONS = ("work_type", "online_dossier")
# Channels the sector counts per case.
CHAT, DOSSIER_MESSAGE, HOMEWORK = "chat", "dossier_message", "homework"
CLIENT_TO_WORKER = "client_to_worker"


def hours_minutes(total_minutes: int, cases: int) -> str | None:
    """Time per case as the sector's tables print it: hours:minutes, truncated to the whole
    minute (442 h 10 min over 31 cases is 855.8 minutes a case: printed 14:15, not 14:16)."""
    if cases <= 0:
        return None
    per_case = total_minutes // cases
    return f"{per_case // 60}:{per_case % 60:02d}"


def _ratio(part: float, whole: float, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def one_working_day_after(moment: datetime) -> datetime:
    """The same time on the next working day (Monday to Friday, Dutch local time); a message
    sent in the weekend counts from Monday 00:00."""
    local = moment.astimezone(LOCAL)
    if local.weekday() >= 5:
        local = (local + timedelta(days=7 - local.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
    deadline = local + timedelta(days=1)
    while deadline.weekday() >= 5:
        deadline += timedelta(days=1)
    return deadline


@dataclass(frozen=True, order=True)
class CellKey:
    organisation: str
    period: str
    funder: str = ALL
    work_type: str = ALL
    # The question topic ("debts_material" under general social work is the sector's
    # "of which material problems"); "all" when not asked for.
    topic: str = ALL
    # "yes", "no", or "all" when the dimension is not asked for.
    online_dossier_used: str = ALL


@dataclass
class Tally:
    """The raw counts of one cell; every figure shown is derived from these."""

    closed_cases: int = 0
    registration_minutes: int = 0
    dossier_minutes: int = 0
    default_minutes: int = 0
    lead_days: float = 0.0
    chats: int = 0
    dossier_messages: int = 0
    homework_contacts: int = 0
    contacts: int = 0
    online_contacts: int = 0
    online_minutes: int = 0
    online_replacing: int = 0
    online_dossier_cases: int = 0
    blended_cases: int = 0
    blended_minutes: int = 0
    blended_lead_days: float = 0.0
    face_to_face_cases: int = 0
    face_to_face_minutes: int = 0
    face_to_face_lead_days: float = 0.0
    intake_attended: int = 0
    intake_missed: int = 0
    follow_up_attended: int = 0
    follow_up_missed: int = 0
    modules_started: int = 0
    modules_completed: int = 0
    modules_dropped_out: int = 0
    referrals_received: int = 0
    waitlisted: int = 0
    first_contacts: int = 0
    waiting_days: float = 0.0
    client_messages: int = 0
    messages_answered: int = 0
    response_hours: float = 0.0
    answered_within_working_day: int = 0
    answered_within_48h: int = 0
    handoffs: int = 0

    @property
    def minutes(self) -> int:
        return self.registration_minutes + self.dossier_minutes

    def figures(self) -> dict[str, Any]:
        cases = self.closed_cases
        return {
            "closed_cases": cases,
            "time_per_case": hours_minutes(self.minutes, cases),
            "registration_time_per_case": hours_minutes(self.registration_minutes, cases),
            "dossier_time_per_case": hours_minutes(self.dossier_minutes, cases),
            "minutes_per_case": _ratio(self.minutes, cases, 2),
            "registration_minutes": self.registration_minutes,
            "dossier_minutes": self.dossier_minutes,
            "default_duration_share": _ratio(self.default_minutes, self.minutes),
            "lead_time_days": _ratio(self.lead_days, cases, 2),
            "chats_per_case": _ratio(self.chats, cases, 2),
            "dossier_messages_per_case": _ratio(self.dossier_messages, cases, 2),
            "homework_contacts_per_case": _ratio(self.homework_contacts, cases, 2),
            "online_dossier_adoption": _ratio(self.online_dossier_cases, cases),
            "online_share_of_contacts": _ratio(self.online_contacts, self.contacts),
            "online_share_of_time": _ratio(self.online_minutes, self.minutes),
            "online_replacing_face_to_face_share": _ratio(
                self.online_replacing, self.online_contacts
            ),
            "blended_cases": self.blended_cases,
            "blended_hours_per_case": _ratio(self.blended_minutes / 60, self.blended_cases, 2),
            "blended_lead_time_days": _ratio(self.blended_lead_days, self.blended_cases, 2),
            "face_to_face_cases": self.face_to_face_cases,
            "face_to_face_hours_per_case": _ratio(
                self.face_to_face_minutes / 60, self.face_to_face_cases, 2
            ),
            "face_to_face_lead_time_days": _ratio(
                self.face_to_face_lead_days, self.face_to_face_cases, 2
            ),
            "intake_attended": self.intake_attended,
            "intake_missed": self.intake_missed,
            "no_show_rate_intake": _ratio(
                self.intake_missed, self.intake_attended + self.intake_missed
            ),
            "follow_up_attended": self.follow_up_attended,
            "follow_up_missed": self.follow_up_missed,
            "no_show_rate_follow_up": _ratio(
                self.follow_up_missed, self.follow_up_attended + self.follow_up_missed
            ),
            "modules_started": self.modules_started,
            "modules_completed": self.modules_completed,
            "modules_dropped_out": self.modules_dropped_out,
            "module_completion_rate": _ratio(self.modules_completed, self.modules_started),
            "module_drop_out_rate": _ratio(self.modules_dropped_out, self.modules_started),
            "referrals_received": self.referrals_received,
            "waitlisted": self.waitlisted,
            "first_contacts": self.first_contacts,
            "waiting_time_days": _ratio(self.waiting_days, self.first_contacts, 2),
            "client_messages": self.client_messages,
            "messages_answered": self.messages_answered,
            "response_time_hours": _ratio(self.response_hours, self.messages_answered, 2),
            "answered_within_working_day_share": _ratio(
                self.answered_within_working_day, self.messages_answered
            ),
            "answered_within_48h_share": _ratio(self.answered_within_48h, self.messages_answered),
            "handoffs": self.handoffs,
        }


@dataclass(frozen=True)
class Cell:
    key: CellKey
    tally: Tally

    def row(self) -> dict[str, Any]:
        return {
            "organisation": self.key.organisation,
            "period": self.key.period,
            "funder": self.key.funder,
            "work_type": self.key.work_type,
            "topic": self.key.topic,
            "online_dossier_used": self.key.online_dossier_used,
            **self.tally.figures(),
        }


FIELDS: tuple[str, ...] = tuple(Cell(CellKey("x", "x"), Tally()).row())


@dataclass
class _Index:
    """Joins between facts, made once per computation."""

    facts: Facts
    cases: dict[str, Case] = field(default_factory=dict)
    case_of_referral: dict[str, Case] = field(default_factory=dict)
    case_of_client: dict[tuple[str, str], Case] = field(default_factory=dict)
    referral_of_client: dict[tuple[str, str], Referral] = field(default_factory=dict)
    contacts: dict[str, list[Contact]] = field(default_factory=lambda: defaultdict(list))
    attended: dict[str, list[Appointment]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        for case in sorted(self.facts.cases, key=lambda c: (c.opened_at or _EPOCH, c.id)):
            self.cases[case.id] = case
            if case.referral_id:
                self.case_of_referral[case.referral_id] = case
            if case.client_ref:
                self.case_of_client[(case.organisation_id, case.client_ref)] = case
        for referral in sorted(self.facts.referrals, key=lambda r: (r.received_at or _EPOCH, r.id)):
            if referral.client_ref:
                self.referral_of_client[(referral.organisation_id, referral.client_ref)] = referral
        for contact in sorted(self.facts.contacts, key=lambda c: (c.occurred_at, c.id)):
            self.contacts[contact.trajectory_id].append(contact)
        for appointment in self.facts.appointments:
            if appointment.outcome == "attended" and appointment.moment is not None:
                self.attended[appointment.trajectory_id].append(appointment)

    def online_dossier_used(self, case: Case) -> bool:
        return case.online_dossier_used or any(c.online_dossier for c in self.contacts[case.id])

    def first_contact(self, case: Case) -> datetime | None:
        if case.first_contact_at is not None:
            return case.first_contact_at
        moments = [c.occurred_at for c in self.contacts[case.id]]
        moments += [a.moment for a in self.attended[case.id] if a.moment is not None]
        return min(moments, default=None)


_EPOCH = datetime(1970, 1, 1).astimezone(LOCAL)


class _Grouping:
    def __init__(self, index: _Index, kind: PeriodKind, by: Iterable[str]) -> None:
        self.index, self.kind, self.by = index, kind, frozenset(by)
        unknown = self.by - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"cannot group by {sorted(unknown)}; choose from {DIMENSIONS}")
        self.tallies: dict[CellKey, Tally] = defaultdict(Tally)

    def tally(
        self,
        organisation: str,
        moment: datetime,
        funder: str | None,
        work_type: str | None,
        online: bool | None,
        topic: str | None = None,
    ) -> Tally:
        key = CellKey(
            organisation=organisation,
            period=period_of(moment, self.kind),
            funder=(funder or UNKNOWN) if "funder" in self.by else ALL,
            work_type=(work_type or UNKNOWN) if "work_type" in self.by else ALL,
            topic=(topic or UNKNOWN) if "topic" in self.by else ALL,
            online_dossier_used=(
                ("yes" if online else "no" if online is not None else UNKNOWN)
                if "online_dossier" in self.by
                else ALL
            ),
        )
        return self.tallies[key]

    def for_case(self, case: Case, moment: datetime) -> Tally:
        return self.tally(
            case.organisation_id,
            moment,
            case.funder,
            case.work_type,
            self.index.online_dossier_used(case),
            case.topic,
        )


def figures(facts: Facts, kind: PeriodKind, by: Iterable[str] = ()) -> list[Cell]:
    """Every measure, per organisation and period, and per the dimensions in `by`."""
    index = _Index(facts)
    grouping = _Grouping(index, kind, by)
    for case in index.cases.values():
        _count_case(grouping, index, case)
    for appointment in facts.appointments:
        _count_appointment(grouping, index, appointment)
    for enrolment in facts.enrolments:
        if enrolment.started_at is None:
            continue
        case = index.cases.get(enrolment.trajectory_id or "") or index.case_of_client.get(
            (enrolment.organisation_id, enrolment.client_ref or "")
        )
        if case is not None:
            tally = grouping.for_case(case, enrolment.started_at)
        else:
            referral = index.referral_of_client.get(
                (enrolment.organisation_id, enrolment.client_ref or "")
            )
            tally = _for_referral(
                grouping, enrolment.organisation_id, referral, enrolment.started_at
            )
        tally.modules_started += 1
        if enrolment.completed_at is not None:
            tally.modules_completed += 1
        elif enrolment.abandoned_at is not None and enrolment.steps_completed <= 1:
            tally.modules_dropped_out += 1
    for referral in facts.referrals:
        case = index.case_of_referral.get(referral.id)
        if referral.received_at is not None:
            _for_referral(
                grouping, referral.organisation_id, referral, referral.received_at, case
            ).referrals_received += 1
        if referral.waitlisted_at is not None:
            _for_referral(
                grouping, referral.organisation_id, referral, referral.waitlisted_at, case
            ).waitlisted += 1
    for handoff in facts.handoffs:
        case = index.cases.get(handoff.trajectory_id or "")
        if case is not None and handoff.requested_at is not None:
            grouping.for_case(case, handoff.requested_at).handoffs += 1
    return [Cell(key, grouping.tallies[key]) for key in sorted(grouping.tallies)]


def _for_referral(
    grouping: _Grouping,
    organisation: str,
    referral: Referral | None,
    moment: datetime,
    case: Case | None = None,
) -> Tally:
    if case is not None:
        return grouping.for_case(case, moment)
    if referral is None:
        return grouping.tally(organisation, moment, None, None, None)
    return grouping.tally(
        organisation,
        moment,
        referral.funder or referral.municipality,
        referral.work_type,
        False,
        referral.topic,
    )


def _count_case(grouping: _Grouping, index: _Index, case: Case) -> None:
    contacts = index.contacts[case.id]
    first = index.first_contact(case)
    if first is not None and case.referred_at is not None:
        tally = grouping.for_case(case, first)
        tally.first_contacts += 1
        tally.waiting_days += (first - case.referred_at).total_seconds() / 86400
    _count_messages(grouping, case, contacts)
    if case.closed_at is None:
        return
    tally = grouping.for_case(case, case.closed_at)
    tally.closed_cases += 1
    lead_days = (case.closed_at - case.opened_at).total_seconds() / 86400 if case.opened_at else 0.0
    tally.lead_days += lead_days
    if index.online_dossier_used(case):
        tally.online_dossier_cases += 1
    minutes = 0
    online = False
    for contact in contacts:
        minutes += contact.minutes
        tally.contacts += 1
        if contact.online_dossier:
            tally.dossier_minutes += contact.minutes
        else:
            tally.registration_minutes += contact.minutes
        if contact.default_duration:
            tally.default_minutes += contact.minutes
        if contact.online:
            online = True
            tally.online_contacts += 1
            tally.online_minutes += contact.minutes
            tally.online_replacing += contact.replaces_face_to_face
        tally.chats += contact.channel == CHAT
        tally.dossier_messages += contact.channel == DOSSIER_MESSAGE
        tally.homework_contacts += contact.channel == HOMEWORK
    if online:
        tally.blended_cases += 1
        tally.blended_minutes += minutes
        tally.blended_lead_days += lead_days
    else:
        tally.face_to_face_cases += 1
        tally.face_to_face_minutes += minutes
        tally.face_to_face_lead_days += lead_days


def _count_messages(grouping: _Grouping, case: Case, contacts: list[Contact]) -> None:
    """Response time: from a client's online message to the worker's next contact."""
    for position, message in enumerate(contacts):
        if message.direction != CLIENT_TO_WORKER or not message.online:
            continue
        tally = grouping.for_case(case, message.occurred_at)
        tally.client_messages += 1
        answer = next(
            (
                c
                for c in contacts[position + 1 :]
                if c.direction != CLIENT_TO_WORKER and c.occurred_at >= message.occurred_at
            ),
            None,
        )
        if answer is None:
            continue
        waited = answer.occurred_at - message.occurred_at
        tally.messages_answered += 1
        tally.response_hours += waited.total_seconds() / 3600
        tally.answered_within_48h += waited <= timedelta(hours=48)
        tally.answered_within_working_day += answer.occurred_at <= one_working_day_after(
            message.occurred_at
        )


def _count_appointment(grouping: _Grouping, index: _Index, appointment: Appointment) -> None:
    outcome, moment = appointment.outcome, appointment.moment
    if outcome is None or moment is None or appointment.cancelled_at is not None:
        return
    case = index.cases.get(appointment.trajectory_id)
    if case is not None:
        tally = grouping.for_case(case, moment)
    else:
        tally = grouping.tally(appointment.organisation_id, moment, None, None, None)
    if appointment.kind == "intake":
        tally.intake_attended += outcome == "attended"
        tally.intake_missed += outcome == "missed"
    else:
        tally.follow_up_attended += outcome == "attended"
        tally.follow_up_missed += outcome == "missed"


@dataclass(frozen=True, order=True)
class MixRow:
    organisation: str
    period: str
    municipality: str
    postcode_area: str
    dimension: str  # referrer_type | topic
    value: str
    referrals: int


def referral_mix(facts: Facts, kind: PeriodKind) -> list[MixRow]:
    """Where referrals come from and what they are about, per postcode area (wijk)."""
    counts: dict[tuple[str, str, str, str, str, str], int] = defaultdict(int)
    for r in facts.referrals:
        if r.received_at is None or r.duplicate:
            continue
        base = (
            r.organisation_id,
            period_of(r.received_at, kind),
            r.funder or r.municipality or UNKNOWN,
            r.postcode_area or UNKNOWN,
        )
        counts[(*base, "referrer_type", r.referrer_type or UNKNOWN)] += 1
        counts[(*base, "topic", r.topic or UNKNOWN)] += 1
    return sorted(MixRow(*key, referrals=n) for key, n in counts.items())


@dataclass(frozen=True)
class Pulse:
    """The figures operators and managers watch live (the Prometheus gauges)."""

    open_trajectories: dict[str, int]
    waiting_list: dict[str, int]
    # (organisation, kind) -> missed / (attended + missed) over the recent window
    no_show_rate: dict[tuple[str, str], float]


@dataclass(frozen=True)
class PulseFacts:
    """What the pulse is computed from: open trajectories and referrals on the waiting list,
    counted per organisation (by the database: ketenbus.analytics.store), and the appointments
    of the recent window."""

    open_trajectories: dict[str, int]
    waiting_list: dict[str, int]
    appointments: list[Appointment]


def pulse(facts: PulseFacts, now: datetime, window: timedelta = timedelta(days=30)) -> Pulse:
    """Open trajectories and the waiting list now; the no-show rate of the last `window`
    (a recent rate, so that a jump shows, rather than a lifetime average that hardly moves)."""
    seen: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for appointment in facts.appointments:
        moment, outcome = appointment.moment, appointment.outcome
        if moment is None or outcome is None or not now - window <= moment <= now:
            continue
        counts = seen[(appointment.organisation_id, appointment.kind)]
        counts[outcome == "missed"] += 1
    rates = {
        key: round(missed / (attended + missed), 4) for key, (attended, missed) in seen.items()
    }
    organisations = {*facts.open_trajectories, *facts.waiting_list}
    return Pulse(
        {org: facts.open_trajectories.get(org, 0) for org in organisations},
        {org: facts.waiting_list.get(org, 0) for org in organisations},
        rates,
    )
