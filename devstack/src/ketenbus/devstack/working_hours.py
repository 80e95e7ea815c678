"""When a welfare organisation sees its clients: working days (Monday to Friday, not on a
Dutch public holiday), mostly 08:30-17:00, a few evening slots until 20:00 for clients who
work; never at night, on Sundays or on public holidays (DOMAIN.md, "Working hours")."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Europe/Amsterdam")
SLOT_MINUTES = 30
DAY_SLOTS = (time(8, 30), time(16, 30))  # the first and the last start of a day slot
EVENING_SLOTS = (time(17, 30), time(19, 0))  # the last one ends by 20:00


def easter_sunday(year: int) -> date:
    """The Gregorian Easter date (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    month = (h + weekday - 7 * m + 114) // 31
    day = (h + weekday - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def public_holidays(year: int) -> set[date]:
    """New Year, Easter Monday, King's Day (26 April when the 27th is a Sunday), Liberation
    Day in lustrum years, Ascension, Whit Monday, Christmas (both days)."""
    easter = easter_sunday(year)
    kings_day = date(year, 4, 27)
    if kings_day.weekday() == 6:
        kings_day = date(year, 4, 26)
    days = {
        date(year, 1, 1),
        easter + timedelta(days=1),
        kings_day,
        easter + timedelta(days=39),
        easter + timedelta(days=50),
        date(year, 12, 25),
        date(year, 12, 26),
    }
    if year % 5 == 0:
        days.add(date(year, 5, 5))
    return days


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in public_holidays(day.year)


def within_working_hours(moment: datetime, evening: bool = True) -> bool:
    """On a working day, starting 08:30-16:30 (or 17:30-19:00 in the evening)."""
    local = moment.astimezone(LOCAL)
    if not is_working_day(local.date()):
        return False
    starts = local.time()
    windows = [DAY_SLOTS, EVENING_SLOTS] if evening else [DAY_SLOTS]
    return any(first <= starts <= last for first, last in windows)


def appointment_slot(moment: datetime, evening: bool = False) -> datetime:
    """The slot of an appointment planned around `moment`, never before it: the moment's
    place in its day (00:00-24:00) is mapped onto the day's slots, so appointments spread
    over the working day instead of piling up at 08:30; when that slot has passed, or the
    day is no working day, the same place on the next working day."""
    local = moment.astimezone(LOCAL)
    first, last = EVENING_SLOTS if evening else DAY_SLOTS
    start = first.hour * 60 + first.minute
    slots = ((last.hour * 60 + last.minute) - start) // SLOT_MINUTES
    share = (local.hour * 60 + local.minute) / (24 * 60)
    minutes = start + round(share * slots) * SLOT_MINUTES
    day = local.date()
    while True:
        if is_working_day(day):
            slot = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=LOCAL)
            if slot >= moment:
                return slot
        day += timedelta(days=1)


_MONTHS = {
    **{
        name: number
        for number, name in enumerate(
            (
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
            start=1,
        )
    },
    **{
        name: number
        for number, name in enumerate(
            (
                "january",
                "february",
                "march",
                "april",
                "may",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
            ),
            start=1,
        )
    },
}
_MOMENT = re.compile(
    r"\b(?P<day>\d{1,2}) (?P<month>[a-z]{3,9})\.?(?: om| at)? (?P<hour>\d{2}):(?P<minute>\d{2})",
    re.IGNORECASE,
)


def moments_in(text: str, year: int) -> list[datetime]:
    """The appointment moments a client's message names, as notifications writes them
    ("dinsdag 3 maart om 10:00 uur", "Tuesday 3 March at 10:00", "di 3 mrt 10:00")."""
    found = []
    for match in _MOMENT.finditer(text):
        name = match["month"].lower()
        month = (
            _MONTHS.get(name)
            or (3 if name == "mrt" else None)
            or next((n for full, n in _MONTHS.items() if full[:3] == name[:3]), None)
        )
        if month is None:
            continue
        found.append(
            datetime(
                year,
                month,
                int(match["day"]),
                int(match["hour"]),
                int(match["minute"]),
                tzinfo=LOCAL,
            )
        )
    return found
