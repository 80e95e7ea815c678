"""Reporting periods: month, quarter, year, or the whole history, in Dutch local time.

A contact at 23:30 UTC on 31 December belongs to the next year in the Netherlands; the
sector's tables follow the calendar the organisation lives by, so periods do too.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Europe/Amsterdam")
ALL_TIME = "all"


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ALL = "all"


def period_of(moment: datetime, kind: PeriodKind) -> str:
    """'2025-03', '2025-Q1', '2025' or 'all': the label the benchmark contract uses too."""
    local = moment.astimezone(LOCAL)
    if kind is PeriodKind.MONTH:
        return f"{local.year:04d}-{local.month:02d}"
    if kind is PeriodKind.QUARTER:
        return f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}"
    if kind is PeriodKind.YEAR:
        return f"{local.year:04d}"
    return ALL_TIME


def kind_of(period: str) -> PeriodKind:
    if period == ALL_TIME:
        return PeriodKind.ALL
    if "-Q" in period:
        return PeriodKind.QUARTER
    if "-" in period:
        return PeriodKind.MONTH
    return PeriodKind.YEAR


def overlap(one: str, other: str) -> bool:
    """Do two different calendar periods share a day? (2025 and 2025-Q3 do; 2025-Q2 and
    2025-Q3 do not.) Years and quarters only: the periods a benchmark snapshot covers."""
    return one != other and one[:4] == other[:4] and (len(one) == 4 or len(other) == 4)


def is_over(period: str, now: datetime) -> bool:
    """Has the quarter or year ended (in Dutch local time) by `now`? Labels of one kind sort
    as their periods do ('2025-Q3' < '2025-Q4' < '2026-Q1'), so it is over when it comes
    before the period `now` lies in."""
    return period < period_of(now, kind_of(period))
