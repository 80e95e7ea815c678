"""Working days and appointment slots of the simulated year."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from ketenbus.devstack.working_hours import (
    LOCAL,
    appointment_slot,
    easter_sunday,
    is_working_day,
    public_holidays,
    within_working_hours,
)


def test_easter_and_the_dutch_public_holidays():
    assert easter_sunday(2025) == date(2025, 4, 20)
    assert easter_sunday(2026) == date(2026, 4, 5)
    assert public_holidays(2025) == {
        date(2025, 1, 1),
        date(2025, 4, 21),  # Easter Monday
        date(2025, 4, 26),  # King's Day: the 27th is a Sunday
        date(2025, 5, 5),  # Liberation Day, a lustrum year
        date(2025, 5, 29),  # Ascension
        date(2025, 6, 9),  # Whit Monday
        date(2025, 12, 25),
        date(2025, 12, 26),
    }
    assert date(2026, 5, 5) not in public_holidays(2026)
    assert date(2026, 4, 27) in public_holidays(2026)


def test_no_sundays_no_saturdays_no_holidays():
    assert not is_working_day(date(2025, 3, 2))  # Sunday
    assert not is_working_day(date(2025, 3, 1))  # Saturday
    assert not is_working_day(date(2025, 4, 21))
    assert is_working_day(date(2025, 4, 22))


def test_slots_lie_in_working_hours_never_before_the_moment_and_spread_over_the_day():
    rng = random.Random(7)
    start = datetime(2025, 1, 1, tzinfo=LOCAL)
    seen_hours = set()
    for _ in range(2000):
        moment = start + timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        evening = rng.random() < 0.1
        slot = appointment_slot(moment, evening=evening)
        assert slot >= moment
        assert slot - moment < timedelta(days=6)  # Easter: Friday night to Tuesday
        assert within_working_hours(slot), (moment, slot)
        assert within_working_hours(slot, evening=False) or evening
        assert slot.minute in (0, 30)
        seen_hours.add(slot.hour)
    assert set(range(8, 17)) <= seen_hours and seen_hours <= set(range(8, 20))


def test_a_moment_at_three_at_night_on_a_sunday_goes_to_monday():
    slot = appointment_slot(datetime(2025, 3, 2, 3, 0, tzinfo=LOCAL))
    assert slot.date() == date(2025, 3, 3) and slot.hour == 9


def test_the_moments_notifications_writes_are_read_back():
    from ketenbus.contracts.values import Language
    from ketenbus.devstack.working_hours import moments_in
    from ketenbus.notifications.timing import short_moment, spoken_moment

    at = datetime(2025, 3, 4, 19, 0, tzinfo=LOCAL)
    for language in Language:
        for write in (spoken_moment, short_moment):
            text = f"Herinnering: uw afspraak is {write(at, LOCAL, language)}. Tot dan!"
            assert moments_in(text, 2025) == [at], text
    assert moments_in("Reply STOP to 12345", 2025) == []
