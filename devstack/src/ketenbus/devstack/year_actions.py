"""A resident's help as rows: who does what, when, and which earlier rows it waits for.

Pure: from a planned client (year_scenario) and the moment their trajectory opened, the
actions of their year; before that, for a resident a creditor signalled, the signal's own rows
(the report, the outreach, the answer). The simulation (simulation.py) plays the rows; a test
can read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ketenbus.devstack.working_hours import appointment_slot
from ketenbus.devstack.year_scenario import Client

# Every so many residents works during the day: their follow-ups are in the evening slots.
EVENING_CLIENTS = 8


class Kind(StrEnum):
    """What is done, and by whom (the worker unless it says otherwise)."""

    SIGNAL = "signal"  # a creditor reports the resident's arrears (early warning)
    OUTREACH = "outreach"  # a letter, a call or a home visit to reach the resident
    SIGNAL_ANSWER = "signal_answer"  # the resident, reached, accepts help or declines it

    SCHEDULE = "schedule"  # an appointment
    REGISTER = "register"  # the appointment attended or missed, and its contact
    MESSAGE = "message"  # the client writes in the online dossier or a chat
    ANSWER = "answer"  # the worker answers it
    ASSIGN = "assign"  # a self-help module
    START = "start"  # the client starts it in the portal
    QUESTIONNAIRE = "questionnaire"  # the client fills in the module's self-scan
    SUBMIT = "submit"  # the client hands in the module's homework
    HOMEWORK = "homework"  # the worker reads the homework and answers (feedback)
    COMPLETE = "complete"  # the client finishes the module
    HAND_OFF = "hand_off"  # consent recorded, the debts handed to debt counselling
    PARTNER_ANSWER = "partner_answer"  # the partner accepts or declines
    PARTNER_STATUS = "partner_status"  # the partner reports how it goes
    PARTNER_COMPLETE = "partner_complete"  # the partner is done
    WITHDRAW_CONSENT = "withdraw_consent"  # the client wants no reminders any more
    OPT_OUT = "opt_out"  # the client answers STOP to an SMS, or follows the mail's link
    AFTERCARE = "aftercare"
    CLOSE = "close"
    ERASE = "erase"  # the client asks for their data to be erased


Key = tuple[Kind, int]
# Done alongside the case, not part of it: closing does not wait for these.
ALONGSIDE = frozenset({Kind.PARTNER_ANSWER, Kind.PARTNER_STATUS, Kind.PARTNER_COMPLETE})


@dataclass(frozen=True)
class Action:
    """One row of the year: at `moment`, do `kind` (to the `number`th appointment, message,
    module or homework of the journey), once the rows in `after` are done."""

    moment: datetime
    kind: Kind
    number: int = 0
    after: tuple[Key, ...] = ()

    @property
    def key(self) -> Key:
        return (self.kind, self.number)


def appointment_slots(client: Client, opened: datetime) -> list[datetime]:
    """Appointments in working hours on working days (a few evening slots for clients who
    work), in the order planned."""
    slots: list[datetime] = []
    for appointment in client.appointments:
        evening = appointment.kind == "follow_up" and client.number % EVENING_CLIENTS == 0
        after = opened + appointment.offset
        if slots and after <= slots[-1]:
            after = slots[-1] + timedelta(minutes=appointment.minutes)
        slots.append(appointment_slot(after, evening=evening))
    return slots


def signal_actions(client: Client) -> list[Action]:
    """A signalled resident's rows before any referral: the creditor's signal, each outreach
    attempt after the one before, and the answer after the attempt that reached them."""
    signal = client.signal
    assert signal is not None
    rows = [Action(signal.sent_at, Kind.SIGNAL)]
    for n, attempt in enumerate(signal.outreach):
        rows.append(Action(attempt.at, Kind.OUTREACH, n, (rows[-1].key,)))
    if signal.answered_at is not None:
        rows.append(Action(signal.answered_at, Kind.SIGNAL_ANSWER, after=(rows[-1].key,)))
    return rows


def plan_actions(client: Client, opened: datetime, day: timedelta) -> list[Action]:
    """Every row of the client's help from `opened`, by moment; `day` is a simulated day
    (shorter in a shortened year). Closing comes after everything planned before it."""
    slots = appointment_slots(client, opened)
    closes = opened + client.closes_after
    if slots and closes <= slots[-1] + timedelta(hours=2):
        closes = slots[-1] + timedelta(hours=2) + day
    rows: list[Action] = []
    for n, starts in enumerate(slots):
        # Three days ahead in any year (a shortened one too): time for both reminders.
        rows.append(Action(max(opened, starts - timedelta(days=3)), Kind.SCHEDULE, n))
        rows.append(Action(starts + timedelta(hours=1), Kind.REGISTER, n, ((Kind.SCHEDULE, n),)))
    for n, message in enumerate(client.messages):
        sent = opened + message.offset
        rows.append(Action(sent, Kind.MESSAGE, n))
        rows.append(Action(sent + message.answer_after, Kind.ANSWER, n, ((Kind.MESSAGE, n),)))
    for m, module in enumerate(client.modules):
        assigned = opened + module.offset
        rows.append(Action(assigned, Kind.ASSIGN, m))
        rows.append(Action(assigned + day, Kind.START, m, ((Kind.ASSIGN, m),)))
        done_first: list[Key] = [(Kind.START, m)]
        if module.questionnaire_after is not None:
            at = assigned + day + module.questionnaire_after
            rows.append(Action(at, Kind.QUESTIONNAIRE, m, ((Kind.START, m),)))
            done_first.append((Kind.QUESTIONNAIRE, m))
        done_first += [(Kind.SUBMIT, h) for h, w in enumerate(client.homework) if w.module == m]
        if module.completes_after is not None:
            rows.append(
                Action(assigned + module.completes_after, Kind.COMPLETE, m, tuple(done_first))
            )
    for h, homework in enumerate(client.homework):
        seen = opened + homework.offset
        waits: tuple[Key, ...] = ()
        if homework.module is not None:
            rows.append(Action(seen - day / 2, Kind.SUBMIT, h, ((Kind.START, homework.module),)))
            waits = ((Kind.SUBMIT, h),)
        rows.append(Action(seen, Kind.HOMEWORK, h, waits))
    if client.hand_off_at is not None:
        handed = opened + client.hand_off_at
        rows.append(Action(handed, Kind.HAND_OFF))
        if client.partner is not None:
            course = client.partner
            answered = handed + course.answers_after
            rows.append(Action(answered, Kind.PARTNER_ANSWER, after=((Kind.HAND_OFF, 0),)))
            if course.accepts:
                reported = answered + course.status_after
                rows.append(
                    Action(reported, Kind.PARTNER_STATUS, after=((Kind.PARTNER_ANSWER, 0),))
                )
                rows.append(
                    Action(
                        reported + course.completes_after,
                        Kind.PARTNER_COMPLETE,
                        after=((Kind.PARTNER_STATUS, 0),),
                    )
                )
    if client.withdraws_consent is not None:
        after = ((Kind.HAND_OFF, 0),) if client.hand_off_at is not None else ()
        rows.append(Action(opened + client.withdraws_consent[0], Kind.WITHDRAW_CONSENT, 0, after))
    if client.opts_out_at is not None:
        rows.append(Action(opened + client.opts_out_at, Kind.OPT_OUT))
    if client.aftercare:
        rows.append(Action(closes - day, Kind.AFTERCARE))
    # What would come after closing is not done (a module's last homework, a late answer);
    # what the partner does goes on alongside.
    rows = [r for r in rows if r.moment < closes or r.kind in ALONGSIDE]
    before = tuple(r.key for r in rows if r.kind not in ALONGSIDE)
    rows.append(Action(closes, Kind.CLOSE, after=before))
    if client.erases:
        rows.append(Action(closes + 2 * day, Kind.ERASE, after=((Kind.CLOSE, 0),)))
    return sorted(rows, key=lambda r: r.moment)
