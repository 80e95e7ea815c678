"""The sector's own figures table, in the form managers already know: pure, no I/O.

One row per location x work type (werksoort), and under general social work an "of which
material problems" row: its cases whose question was about money and debts. Two column
groups: the closed cases that used the online dossier and those that did not.

- with the online dossier: closed cases; total time in the registration system, in the
  online dossier and together (h:mm); average time per case (h:mm, truncated to the whole
  minute); lead time in days; the number of chat contacts, messages and homework contacts
  (totals over the row's cases, as the sector prints them, not averages);
- without it: closed cases; total registration time; average time per case; lead time.

A location is the municipality (funder) whose residents a team of the organisation serves:
the events carry no finer place. A closed case counts in the period it was closed. The total
row adds up the rows of the organisation and period ("of which" rows are part of their work
type's row already, so they are not added twice); its averages come from its totals.
Lead time is the mean of the cases' days from opened to closed, rounded to whole days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from ketenbus.analytics import labels
from ketenbus.analytics.facts import DEBTS_MATERIAL, GENERAL_SOCIAL_WORK, Facts
from ketenbus.analytics.measures import ALL, figures
from ketenbus.analytics.periods import PeriodKind
from ketenbus.contracts.values import Language

# Work types and the question topics the sector shows as "of which" rows under them.
OF_WHICH: dict[str, tuple[str, ...]] = {GENERAL_SOCIAL_WORK: (DEBTS_MATERIAL,)}
# The order of the work types in the table; others follow by name.
WORK_TYPE_ORDER = ("general_social_work", "school_social_work", "online_help")
TOTAL = "total"


def h_mm(minutes: int) -> str:
    """A total time as the sector prints it: hours:minutes (442:10)."""
    return f"{minutes // 60}:{minutes % 60:02d}"


def per_case(minutes: int, cases: int) -> str | None:
    """Average time per case, truncated to the whole minute: 26,530 minutes over 31 cases is
    855.8 minutes, printed 14:15."""
    return h_mm(minutes // cases) if cases else None


def whole_days(days: float, cases: int) -> int | None:
    """The mean lead time in whole days, rounded half up."""
    return int(days / cases + 0.5) if cases else None


@dataclass
class Group:
    """The raw counts of one column group (with or without the online dossier) of a row."""

    closed_cases: int = 0
    registration_minutes: int = 0
    dossier_minutes: int = 0
    lead_days: float = 0.0
    chats: int = 0
    messages: int = 0
    homework_contacts: int = 0

    def add(self, other: Group) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class SectorRow:
    organisation: str
    period: str
    location: str
    work_type: str
    # "all" for a work type's own row; the question topic of an "of which" row.
    of_which: str = ALL
    with_dossier: Group | None = None
    without_dossier: Group | None = None

    def __post_init__(self) -> None:
        self.with_dossier = self.with_dossier or Group()
        self.without_dossier = self.without_dossier or Group()

    def row(self) -> dict[str, Any]:
        w, wo = self.with_dossier, self.without_dossier
        assert w is not None and wo is not None
        return {
            "organisation": self.organisation,
            "period": self.period,
            "location": self.location,
            "work_type": self.work_type,
            "of_which": self.of_which,
            "with_closed_cases": w.closed_cases,
            "with_registration_time": h_mm(w.registration_minutes),
            "with_dossier_time": h_mm(w.dossier_minutes),
            "with_total_time": h_mm(w.registration_minutes + w.dossier_minutes),
            "with_time_per_case": per_case(
                w.registration_minutes + w.dossier_minutes, w.closed_cases
            ),
            "with_lead_time_days": whole_days(w.lead_days, w.closed_cases),
            "with_chats": w.chats,
            "with_messages": w.messages,
            "with_homework_contacts": w.homework_contacts,
            "without_closed_cases": wo.closed_cases,
            "without_registration_time": h_mm(wo.registration_minutes + wo.dossier_minutes),
            "without_time_per_case": per_case(
                wo.registration_minutes + wo.dossier_minutes, wo.closed_cases
            ),
            "without_lead_time_days": whole_days(wo.lead_days, wo.closed_cases),
        }


COLUMNS: tuple[str, ...] = tuple(SectorRow("x", "x", "x", "x").row())
WITH_COLUMNS = tuple(c for c in COLUMNS if c.startswith("with_"))
WITHOUT_COLUMNS = tuple(c for c in COLUMNS if c.startswith("without_"))


def _order(row: SectorRow) -> tuple[Any, ...]:
    total = row.location == TOTAL
    work = WORK_TYPE_ORDER.index(row.work_type) if row.work_type in WORK_TYPE_ORDER else 99
    part = (row.of_which != ALL, row.of_which)
    return (row.organisation, row.period, total, row.location, work, row.work_type, *part)


def sector_table(
    facts: Facts,
    kind: PeriodKind,
    only: str | None = None,
    of_which: dict[str, tuple[str, ...]] = OF_WHICH,
) -> list[SectorRow]:
    """The sector's table of every organisation in `facts`, per period of `kind` (only the
    period `only` when given): rows per location x work type, "of which" rows, a total row."""
    rows: dict[tuple[str, str, str, str, str], SectorRow] = {}

    def row_of(organisation: str, period: str, location: str, work: str, topic: str) -> SectorRow:
        key = (organisation, period, location, work, topic)
        if key not in rows:
            rows[key] = SectorRow(organisation, period, location, work, topic)
        return rows[key]

    totals: dict[tuple[str, str], SectorRow] = {}
    cells = figures(facts, kind, by=("funder", "work_type", "topic", "online_dossier"))
    for cell in cells:
        tally, key = cell.tally, cell.key
        if tally.closed_cases == 0 or (only is not None and key.period != only):
            continue
        group = Group(
            closed_cases=tally.closed_cases,
            registration_minutes=tally.registration_minutes,
            dossier_minutes=tally.dossier_minutes,
            lead_days=tally.lead_days,
            chats=tally.chats,
            messages=tally.dossier_messages,
            homework_contacts=tally.homework_contacts,
        )
        targets = [row_of(key.organisation, key.period, key.funder, key.work_type, ALL)]
        if key.topic in of_which.get(key.work_type, ()):
            targets.append(
                row_of(key.organisation, key.period, key.funder, key.work_type, key.topic)
            )
        total = totals.setdefault(
            (key.organisation, key.period), SectorRow(key.organisation, key.period, TOTAL, TOTAL)
        )
        targets.append(total)
        for target in targets:
            side = (
                target.with_dossier if key.online_dossier_used == "yes" else target.without_dossier
            )
            assert side is not None
            side.add(group)
    return sorted([*rows.values(), *totals.values()], key=_order)


def rows_as_dicts(rows: Iterable[SectorRow]) -> list[dict[str, Any]]:
    return [row.row() for row in rows]


def row_name(row: dict[str, Any], words: dict[str, str]) -> str:
    """What a row is called in the table: "Utrecht, Algemeen Maatschappelijk Werk", an
    indented "waarvan materiële problematiek", or "Totaal"."""
    if row["location"] == TOTAL:
        return words["value.total"]
    if row["of_which"] != ALL:
        return "  " + words.get(f"of_which.{row['of_which']}", row["of_which"])
    work = words.get(f"work_type.{row['work_type']}", row["work_type"])
    return f"{row['location']}, {work}"


def value_labels(rows: list[dict[str, Any]], language: Language) -> dict[str, str]:
    """The words of the work types, "of which" rows and the total in `rows`, by key."""
    words = labels.words(language)
    keys = {"value.total", "sector.with", "sector.without", "sector.row"}
    for row in rows:
        keys |= {f"work_type.{row['work_type']}", f"of_which.{row['of_which']}"}
    return {key: words[key] for key in sorted(keys) if key in words}


def as_text(rows: list[dict[str, Any]], language: Language) -> str:
    """The table for a terminal, in `language`: the two column groups side by side under
    their headings, one line per row, "of which" rows indented under their work type."""
    words = labels.words(language)
    columns = [(c, *words[c].split(": ", 1)) for c in (*WITH_COLUMNS, *WITHOUT_COLUMNS)]

    def value(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, int):
            return labels.number(v, 0, language)
        return str(v)

    names = [row_name(r, words) for r in rows]
    first = max([len(n) for n in names] + [len(words["sector.row"])])
    widths = [max(len(column), 6) for _, _, column in columns]
    groups, line = [], " " * first
    for group in (words["sector.with"], words["sector.without"]):
        members = [w for (c, g, _), w in zip(columns, widths, strict=True) if g == group]
        span = sum(members) + 2 * len(members)
        groups.append(f"  {group:^{span - 2}}")
    lines = [line + "".join(groups)]
    lines.append(
        f"{words['sector.row']:<{first}}"
        + "".join(f"  {c:>{w}}" for (_, _, c), w in zip(columns, widths, strict=True))
    )
    for row, label in zip(rows, names, strict=True):
        cells = "".join(
            f"  {value(row[c]):>{w}}" for (c, _, _), w in zip(columns, widths, strict=True)
        )
        lines.append(f"{label:<{first}}{cells}")
    return "\n".join(lines)
