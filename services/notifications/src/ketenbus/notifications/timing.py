"""Local time for clients: quiet hours, the client's day, and dates in plain words.

Pure functions. Times are stored in UTC; what a client reads and when an SMS may go out
follow the organisation's time zone (Europe/Amsterdam), summer time included.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ketenbus.contracts.values import Language

_DAYS = {
    Language.NL: ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    Language.EN: ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    Language.NL: (
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ),
    Language.EN: (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def in_quiet_hours(at: datetime, zone: ZoneInfo, start: time, end: time) -> bool:
    local = at.astimezone(zone).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # the usual case: the night spans midnight


def end_of_quiet_hours(at: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """The first moment at or after `at` outside quiet hours."""
    if not in_quiet_hours(at, zone, start, end):
        return at
    local = at.astimezone(zone)
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    return _local(day, end, zone)


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def next_day_at(at: datetime, zone: ZoneInfo, moment: time) -> datetime:
    """`moment` (local) on the day after the local day of `at`."""
    return _local(local_day(at, zone) + timedelta(days=1), moment, zone)


def _local(day: date, moment: time, zone: ZoneInfo) -> datetime:
    # fold=0: on the autumn night that repeats an hour, the first of the two.
    return datetime.combine(day, moment, tzinfo=zone)


def spoken_date(at: datetime, zone: ZoneInfo, language: Language) -> str:
    """ "dinsdag 3 maart" / "Tuesday 3 March"."""
    local = at.astimezone(zone)
    return f"{_DAYS[language][local.weekday()]} {local.day} {_MONTHS[language][local.month - 1]}"


def spoken_moment(at: datetime, zone: ZoneInfo, language: Language) -> str:
    """ "dinsdag 3 maart om 10:00 uur" / "Tuesday 3 March at 10:00"."""
    local = at.astimezone(zone)
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if language is Language.NL:
        return f"{spoken_date(at, zone, language)} om {clock} uur"
    return f"{spoken_date(at, zone, language)} at {clock}"


def short_moment(at: datetime, zone: ZoneInfo, language: Language) -> str:
    """ "di 3 mrt 10:00" / "Tue 3 Mar 10:00": for an SMS, where every character counts."""
    local = at.astimezone(zone)
    day = _DAYS[language][local.weekday()][: 2 if language is Language.NL else 3]
    month = _MONTHS[language][local.month - 1]
    month = "mrt" if language is Language.NL and local.month == 3 else month[:3]
    return f"{day} {local.day} {month} {local.hour:02d}:{local.minute:02d}"
