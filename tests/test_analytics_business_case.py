"""The business case against the sector's published example, computed by hand."""

from __future__ import annotations

import pytest

from ketenbus.analytics.business_case import Assumptions, MeasuredHours, business_case


def test_the_published_example_with_middling_platform_costs_breaks_even_in_year_three():
    # EUR 75/h, 8 groups of 12, 8 sessions, 40 minutes per participant a session:
    # 8 x 12 x 8 x 40 / 60 = 512 hours. Half the sessions online:
    # 256 h x 20 % gain + 256 h x 40 % efficiency = 51.2 + 102.4 = 153.6 h = EUR 11 520 a year.
    case = business_case(Assumptions())

    assert Assumptions().hours_per_year == 512
    first, second, third = case.years[:3]
    assert first.hours_saved == 153.6
    assert first.savings == 11_520
    assert first.costs == 15_000 + 5_000 + 3_000 + 2_500
    assert first.balance == -13_980
    assert (second.costs, second.balance, second.cumulative_balance) == (2_500, 9_020, -4_960)
    assert third.cumulative_balance == 4_060
    assert case.break_even_year == 3
    assert len(case.years) == 5


@pytest.mark.parametrize(
    ("development", "licence", "break_even", "cumulative_that_year"),
    [
        # Cheap platform: -7 480 after year 1 (19 000 costs), +10 520 in year 2.
        (10_000, 1_000, 2, 3_040),
        # Expensive licence: 11 520 - 5 000 = 6 520 a year after -16 480 in year 1.
        (15_000, 5_000, 4, 3_080),
    ],
)
def test_break_even_falls_between_year_two_and_four_depending_on_platform_costs(
    development, licence, break_even, cumulative_that_year
):
    case = business_case(Assumptions(development_cost=development, licence_cost_per_year=licence))
    assert case.break_even_year == break_even
    assert case.years[break_even - 1].cumulative_balance == cumulative_that_year
    assert case.years[break_even - 2].cumulative_balance < 0


def test_measured_hours_replace_the_assumed_ones():
    measured = MeasuredHours(face_to_face_hours=1_000, online_replacing_hours=100, period="2025")
    case = business_case(Assumptions(), measured)

    # 1 000 h x 20 % + 100 h x 40 % = 240 h x EUR 75 = EUR 18 000.
    assert case.years[0].savings == 18_000
    assert case.as_dict()["hours_source"] == "measured"
    assert case.break_even_year == 2  # -7 500, then +15 500


def test_a_platform_that_never_pays_for_itself_has_no_break_even_year():
    case = business_case(Assumptions(licence_cost_per_year=20_000))
    assert case.break_even_year is None
    with pytest.raises(ValueError):
        Assumptions(online_efficiency=1.5)
