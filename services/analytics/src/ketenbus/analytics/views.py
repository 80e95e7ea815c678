"""What a manager sees: the figures of one organisation put together for the dashboard and
the reports. Pure: facts and snapshots in, plain data out."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ketenbus.analytics.business_case import Assumptions, MeasuredHours, business_case
from ketenbus.analytics.facts import Facts
from ketenbus.analytics.measures import figures, referral_mix
from ketenbus.analytics.periods import PeriodKind, period_of
from ketenbus.analytics.sector import rows_as_dicts, sector_table

# The figures a benchmark compares (their words are in labels.py).
BENCHMARK_FIGURES: tuple[str, ...] = (
    "closed_cases",
    "minutes_per_case",
    "lead_time_days",
    "no_show_rate_intake",
    "no_show_rate_follow_up",
    "module_completion_rate",
    "online_share_of_contacts",
)


def measured_hours(facts: Facts, year: str) -> MeasuredHours | None:
    """A year's registered face-to-face hours and online hours that replaced face-to-face."""
    face_to_face = online_replacing = 0
    found = False
    for contact in facts.contacts:
        if period_of(contact.occurred_at, PeriodKind.YEAR) != year:
            continue
        found = True
        if not contact.online:
            face_to_face += contact.minutes
        elif contact.replaces_face_to_face:
            online_replacing += contact.minutes
    if not found:
        return None
    return MeasuredHours(round(face_to_face / 60, 2), round(online_replacing / 60, 2), year)


def latest_year(facts: Facts) -> str | None:
    moments = [c.occurred_at for c in facts.contacts] + [
        c.closed_at for c in facts.cases if c.closed_at
    ]
    return period_of(max(moments), PeriodKind.YEAR) if moments else None


def compare(own_labels: set[str], snapshots: list[dict[str, Any]], period: str) -> dict[str, Any]:
    """The latest snapshot of every organisation for a period, side by side: per figure, the
    case-weighted value over the unsuppressed cells of each organisation."""
    latest: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        if snap["period"] == period:
            latest[snap["organisation"]] = snap  # sorted by publication: the last one wins
    columns = []
    for label, snap in sorted(latest.items(), key=lambda kv: (kv[0] not in own_labels, kv[0])):
        shown = [c for c in snap["cells"] if not c["suppressed"]]
        cases = sum(c["closed_cases"] for c in shown)
        values: dict[str, float | int | None] = {"closed_cases": cases}
        for name in BENCHMARK_FIGURES:
            if name == "closed_cases":
                continue
            weighted = [(c[name], c["closed_cases"]) for c in shown if c.get(name) is not None]
            weight = sum(w for _, w in weighted)
            values[name] = round(sum(v * w for v, w in weighted) / weight, 4) if weight else None
        columns.append(
            {
                "organisation": label,
                "own": label in own_labels,
                "pseudonymised": snap["pseudonymised"],
                "published_at": snap["published_at"],
                "cells": len(snap["cells"]),
                "suppressed_cells": sum(c["suppressed"] for c in snap["cells"]),
                "figures": values,
            }
        )
    return {"period": period, "figures": list(BENCHMARK_FIGURES), "organisations": columns}


def dashboard(
    organisation: str,
    facts: Facts,
    snapshots: list[dict[str, Any]],
    own_labels: set[str],
    assumptions: Assumptions | None = None,
) -> dict[str, Any]:
    """Everything the dashboard page draws, for one organisation."""
    year = latest_year(facts)
    months = [c.row() for c in figures(facts, PeriodKind.MONTH)]
    quarters = [c.row() for c in figures(facts, PeriodKind.QUARTER)]
    years = [c.row() for c in figures(facts, PeriodKind.YEAR)]
    by_dossier = [c.row() for c in figures(facts, PeriodKind.YEAR, by=["online_dossier"])]
    mix: dict[str, dict[str, int]] = {"referrer_type": defaultdict(int), "topic": defaultdict(int)}
    areas: dict[str, int] = defaultdict(int)
    for row in referral_mix(facts, PeriodKind.YEAR):
        if row.period == year:
            mix[row.dimension][row.value] += row.referrals
            if row.dimension == "topic":
                areas[row.postcode_area] += row.referrals
    periods_with_snapshots = sorted({s["period"] for s in snapshots})
    benchmark_period = year if year in periods_with_snapshots else None
    if benchmark_period is None and periods_with_snapshots:
        benchmark_period = periods_with_snapshots[-1]
    case = business_case(
        assumptions or Assumptions(), measured_hours(facts, year) if year else None
    )
    return {
        "organisation": organisation,
        "year": year,
        "months": months,
        "quarters": quarters,
        "years": years,
        "online_dossier": by_dossier,
        # The sector's own table of the year (sector.py), in the form managers know.
        "sector_table": rows_as_dicts(sector_table(facts, PeriodKind.YEAR, only=year))
        if year
        else [],
        "referral_sources": dict(sorted(mix["referrer_type"].items())),
        "topics": dict(sorted(mix["topic"].items())),
        "postcode_areas": dict(sorted(areas.items())),
        "benchmark": compare(own_labels, snapshots, benchmark_period) if benchmark_period else None,
        "business_case": case.as_dict(),
    }
