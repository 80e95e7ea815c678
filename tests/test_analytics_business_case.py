"""The business case against the sector's published example, computed by hand."""

from __future__ import annotations

import pytest

from ketenbus.analytics.business_case import Assumptions, MeasuredHours, business_case
from ketenbus.analytics.programme import COMPONENTS, Programme, calculate, published_example


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


# The sector's programme model (programme.py) with the published example's parameters
# (data/business-case-example.json), every component worked out by hand. Per participant
# and session: 40 min = 2/3 h; x 40 % online efficiency x EUR 75 = EUR 20; x 20 % time
# gain x EUR 75 = EUR 10. Preparation saved per online session: (2 - 0.5) h x 75 = 112.50.
# 8 groups of 12 = 96 participants a variant; referrals: 96 x EUR 75 = 7 200.
HAND = {
    # year: variant: (online efficiency, less scheduling, information online, referrals)
    1: {
        "A": (20 * 3 * 96, 112.5 * 3 * 8, 10 * 5 * 96, 7_200),  # 5 + 3 sessions
        "B": (20 * 2 * 96, 112.5 * 2 * 8, 10 * 8 * 96, 7_200),  # 8 + 2 sessions
    },
    3: {
        "A": (20 * 4 * 96, 112.5 * 4 * 8, 10 * 4 * 96, 7_200),  # 4 + 4 from year 3
        "B": (20 * 6 * 96, 112.5 * 6 * 8, 10 * 4 * 96, 7_200),  # 4 + 6 from year 3
    },
}


def test_the_published_programme_savings_component_by_component():
    result = calculate(published_example())
    savings = {s["year"]: s for s in result["savings"]}
    for year, hand_year in ((1, HAND[1]), (2, HAND[1]), (3, HAND[3]), (5, HAND[3])):
        for variant, expected in hand_year.items():
            got = savings[year]["variants"][variant]
            assert tuple(got[c] for c in COMPONENTS) == expected, (year, variant)
            assert got["total"] == sum(expected)
    assert HAND[1]["A"] == (5_760, 2_700, 4_800, 7_200)  # 20 460
    assert HAND[1]["B"] == (3_840, 1_800, 7_680, 7_200)  # 20 520
    assert HAND[3]["A"] == (7_680, 3_600, 3_840, 7_200)  # 22 320
    assert HAND[3]["B"] == (11_520, 5_400, 3_840, 7_200)  # 27 960
    assert [savings[y]["total"] for y in range(1, 6)] == [40_980, 40_980, 50_280, 50_280, 50_280]
    assert savings[3]["less_scheduling"] == 9_000 and savings[1]["fewer_referrals"] == 14_400


def test_the_cost_scenarios_side_by_side_each_with_its_break_even_year():
    scenarios = {s["name"]: s for s in calculate(published_example())["scenarios"]}
    # Existing platform, no development: 15 000 + 10 000 + 25 000 licence in year 1, the
    # licence after, course costs of 4 000 from year 3.
    # -9 020; +15 980 -> 6 960: break-even in year 2.
    cheap = scenarios["existing platform, no development costs"]
    assert [y["costs"] for y in cheap["years"]] == [50_000, 25_000, 29_000, 29_000, 29_000]
    assert [y["cumulative_balance"] for y in cheap["years"][:2]] == [-9_020, 6_960]
    assert cheap["break_even_year"] == 2
    # With 20 000 development: -29 020; -13 040; +21 280 -> 8 240: year 3.
    developed = scenarios["existing platform with development costs"]
    assert [y["balance"] for y in developed["years"][:3]] == [-29_020, 15_980, 21_280]
    assert [y["cumulative_balance"] for y in developed["years"][:3]] == [-29_020, -13_040, 8_240]
    assert developed["break_even_year"] == 3
    # New platform: 105 000 in year 1; licence 16 000; + 4 000 course costs and 6 000 for
    # extra groups from year 3: -64 020; -39 040; -14 760; +9 520: year 4.
    new = scenarios["new platform"]
    assert [y["costs"] for y in new["years"]] == [105_000, 16_000, 26_000, 26_000, 26_000]
    assert [y["cumulative_balance"] for y in new["years"][:4]] == [
        -64_020,
        -39_040,
        -14_760,
        9_520,
    ]
    assert new["break_even_year"] == 4
    # Their average, year by year: 75 000, 22 000, 28 000: -34 020; -15 040; +7 240: year 3.
    average = scenarios["average"]
    assert [y["costs"] for y in average["years"][:3]] == [75_000, 22_000, 28_000]
    assert [y["cumulative_balance"] for y in average["years"][:3]] == [-34_020, -15_040, 7_240]
    assert average["break_even_year"] == 3


def test_a_programme_must_say_its_sessions_from_year_one_and_average_known_scenarios():
    example = published_example().model_dump()
    example["variants"][0]["sessions"] = [{"from_year": 3, "face_to_face": 4, "online": 4}]
    with pytest.raises(ValueError, match="from year 1"):
        Programme.model_validate(example)
    example = published_example().model_dump()
    example["scenarios"][3]["average_of"] = ["nothing like it"]
    with pytest.raises(ValueError, match="unknown scenarios"):
        Programme.model_validate(example)
