"""The sector benchmark: what an organisation may share with others, and nothing more.

Only aggregates leave the organisation, as a table of closed cases: a row per work type, a
column each for with and without the online dossier. No funder: a funder maps to one
organisation, so it would name a pseudonymised one.

Suppression, in two steps (`suppressed_positions`):
1. Primary: a cell of fewer than ten closed cases could point at a person, so it goes without
   figures (it keeps its place, `suppressed: true`).
2. Complementary: the row totals (per work type), the column totals (with and without the
   online dossier) and the grand total count as known (the sector's own table shows them),
   so a row or column with exactly one suppressed cell would give it away by subtraction.
   In every such line the smallest cell still shown is suppressed too (the lower work type
   first on a tie), and the lines are checked again until every row and every column has
   none or at least two suppressed cells. With two columns that means every row with a
   suppressed cell has both suppressed, and at least two such rows: each suppressed cell
   then lies on a cycle of suppressed cells (row, column, row, column), whose values can
   shift along the cycle without changing any total, so none follows from the others.
The table is complete: a work type with cases only with the dossier (or only without) gets
the other cell too, with zero cases, suppressed like any small cell.

On request the organisation's name is replaced by a stable pseudonym: the same organisation
gets the same pseudonym in every snapshot, so trends can be followed, but the name cannot be
read back from it without the key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime

from ketenbus.analytics.facts import UNKNOWN
from ketenbus.analytics.measures import Cell, Tally
from ketenbus.contracts.events import BenchmarkCell, KpiSnapshotPublishedV2
from ketenbus.contracts.values import WorkType, new_id

SUPPRESSION_THRESHOLD = 10

# A cell of the benchmark table: (work type, online dossier used).
Position = tuple[str, bool]


def pseudonym(organisation: str, key: bytes) -> str:
    digest = hmac.new(key, organisation.encode(), hashlib.sha256).hexdigest()
    return f"organisatie-{digest[:8]}"


def _lines(positions: Iterable[Position]) -> list[list[Position]]:
    """Every row (a work type) and every column (with, without the dossier) of the table."""
    positions = sorted(positions)
    rows = {work_type for work_type, _ in positions}
    return [[p for p in positions if p[0] == row] for row in sorted(rows)] + [
        [p for p in positions if p[1] is column] for column in (False, True)
    ]


def suppressed_positions(
    cases: Mapping[Position, int], threshold: int = SUPPRESSION_THRESHOLD
) -> set[Position]:
    """The cells to publish without figures: the small ones and their complements."""
    suppressed = {position for position, count in cases.items() if count < threshold}
    lines = _lines(cases)
    changed = True
    while changed:
        changed = False
        for line in lines:
            shown = [p for p in line if p not in suppressed]
            if len(line) - len(shown) == 1 and shown:
                suppressed.add(min(shown, key=lambda p: (cases[p], p)))
                changed = True
    return suppressed


def _table(cells: Iterable[Cell]) -> dict[Position, Tally]:
    """The cells by position, the table completed with empty cells."""
    table: dict[Position, Tally] = {}
    for cell in cells:
        key = cell.key
        if key.work_type == UNKNOWN or key.online_dossier_used not in ("yes", "no"):
            continue  # the contract has no place for a cell we cannot name
        table[(key.work_type, key.online_dossier_used == "yes")] = cell.tally
    for work_type, _ in list(table):
        for used in (False, True):
            table.setdefault((work_type, used), Tally())
    return table


def benchmark_cells(
    cells: Iterable[Cell], threshold: int = SUPPRESSION_THRESHOLD
) -> list[BenchmarkCell]:
    """Cells by work type x online dossier; suppressed cells without figures."""
    table = _table(cells)
    hidden = suppressed_positions({p: t.closed_cases for p, t in table.items()}, threshold)
    shared = []
    for (work_type, used), tally in sorted(table.items()):
        base = {"work_type": WorkType(work_type), "online_dossier_used": used}
        if (work_type, used) in hidden:
            shared.append(BenchmarkCell(**base, closed_cases=None, suppressed=True))
            continue
        figures = tally.figures()
        shared.append(
            BenchmarkCell(
                **base,
                closed_cases=figures["closed_cases"],
                suppressed=False,
                minutes_per_case=figures["minutes_per_case"],
                lead_time_days=figures["lead_time_days"],
                no_show_rate_intake=figures["no_show_rate_intake"],
                no_show_rate_follow_up=figures["no_show_rate_follow_up"],
                module_completion_rate=figures["module_completion_rate"],
                online_share_of_contacts=figures["online_share_of_contacts"],
            )
        )
    return shared


def snapshot(
    organisation: str,
    period: str,
    cells: Iterable[Cell],
    *,
    at: datetime,
    pseudonymise: bool,
    key: bytes,
    replaces: str | None = None,
    threshold: int = SUPPRESSION_THRESHOLD,
) -> KpiSnapshotPublishedV2:
    return KpiSnapshotPublishedV2(
        snapshot_id=new_id("kpi"),
        organisation=pseudonym(organisation, key) if pseudonymise else organisation,
        pseudonymised=pseudonymise,
        period=period,
        cells=tuple(benchmark_cells(cells, threshold)),
        published_at=at,
        replaces=replaces,
    )
