"""The sector benchmark: what an organisation may share with others, and nothing more.

Only aggregates leave the organisation. A cell of fewer than ten closed cases could point at
a person, so its figures are suppressed (the cell still says it exists, without numbers). On
request the organisation's name is replaced by a stable pseudonym: the same organisation gets
the same pseudonym in every snapshot, so trends can be followed, but the name cannot be read
back from it without the key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime

from ketenbus.analytics.facts import UNKNOWN
from ketenbus.analytics.measures import Cell
from ketenbus.contracts.events import KpiCell, KpiSnapshotPublished
from ketenbus.contracts.values import WorkType, new_id

SUPPRESSION_THRESHOLD = 10


def pseudonym(organisation: str, key: bytes) -> str:
    digest = hmac.new(key, organisation.encode(), hashlib.sha256).hexdigest()
    return f"organisatie-{digest[:8]}"


def benchmark_cells(cells: Iterable[Cell], threshold: int = SUPPRESSION_THRESHOLD) -> list[KpiCell]:
    """Cells grouped by funder x work type x online dossier; small cells without figures."""
    shared = []
    for cell in cells:
        key, figures = cell.key, cell.tally.figures()
        if UNKNOWN in (key.funder, key.work_type) or key.online_dossier_used not in ("yes", "no"):
            continue  # the contract has no place for a cell we cannot name
        base = {
            "funder": key.funder,
            "work_type": WorkType(key.work_type),
            "online_dossier_used": key.online_dossier_used == "yes",
            "period": key.period,
        }
        if figures["closed_cases"] < threshold:
            shared.append(KpiCell(**base, closed_cases=None, suppressed=True))
            continue
        shared.append(
            KpiCell(
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
    threshold: int = SUPPRESSION_THRESHOLD,
) -> KpiSnapshotPublished:
    return KpiSnapshotPublished(
        snapshot_id=new_id("kpi"),
        organisation=pseudonym(organisation, key) if pseudonymise else organisation,
        pseudonymised=pseudonymise,
        period=period,
        cells=tuple(benchmark_cells(cells, threshold)),
        published_at=at,
    )
